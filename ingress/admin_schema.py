"""The registry as Restate's admin API shows it: ``ServiceMetadata``, ``HandlerMetadata``,
``DeploymentResponse`` and their kin, field for field as Restate 1.7 answers (docs/admin-api.md).

Durations are written in Restate's friendly form; an option the manifest (or a PATCH) does not set
shows the value the engine applies.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from reprise.engine.config import Config
from reprise.engine.durations import format_ms
from reprise.engine.introspection import redact_header_map
from reprise.engine.registry import Deployment, HandlerInfo, ServiceInfo

SERVICE_TYPES = {"SERVICE": "Service", "VIRTUAL_OBJECT": "VirtualObject", "WORKFLOW": "Workflow"}
HANDLER_TYPES = {"EXCLUSIVE": "Exclusive", "SHARED": "Shared", "WORKFLOW": "Workflow"}
PROTOCOL_TYPES = {"BIDI_STREAM": "BidiStream", "REQUEST_RESPONSE": "RequestResponse"}
DEFAULT_IDEMPOTENCY_RETENTION_MS = 24 * 3600 * 1000  # the ingress's, when the manifest names none
# manifest option (milliseconds) -> admin API field (friendly duration)
DURATION_FIELDS = {"idempotencyRetention": "idempotency_retention",
                   "workflowCompletionRetention": "workflow_completion_retention",
                   "journalRetention": "journal_retention", "inactivityTimeout": "inactivity_timeout",
                   "abortTimeout": "abort_timeout"}


def _describe_body(part: dict[str, Any]) -> str:
    """Restate's one-line description of a handler's input or output: ``none``, ``JSON <type>``, or the
    content type."""
    schema = part.get("jsonSchema")
    if isinstance(schema, dict) and isinstance(schema.get("type"), str):
        return f"JSON {schema['type']}"
    if part.get("contentType"):
        return str(part["contentType"])
    return "none"


def _retry_policy(options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if options.get("retryPolicyInitialInterval") is not None:
        out["initial_interval"] = format_ms(int(options["retryPolicyInitialInterval"]))
    if options.get("retryPolicyExponentiationFactor") is not None:
        out["exponentiation_factor"] = float(options["retryPolicyExponentiationFactor"])
    out["max_attempts"] = options.get("retryPolicyMaxAttempts")
    if options.get("retryPolicyMaxInterval") is not None:
        out["max_interval"] = format_ms(int(options["retryPolicyMaxInterval"]))
    if options.get("retryPolicyOnMaxAttempts"):
        out["on_max_attempts"] = str(options["retryPolicyOnMaxAttempts"]).capitalize()
    return out


def handler_metadata(svc: ServiceInfo, h: HandlerInfo) -> dict[str, Any]:
    m = h.manifest
    out: dict[str, Any] = {"name": h.name}
    if svc.keyed and h.ty:
        out["ty"] = HANDLER_TYPES.get(h.ty, h.ty)
    if m.get("documentation"):
        out["documentation"] = m["documentation"]
    if m.get("metadata"):
        out["metadata"] = m["metadata"]
    for key, name in DURATION_FIELDS.items():
        if m.get(key) is not None:
            out[name] = format_ms(int(m[key]))
    out["public"] = svc.public and h.public
    inp, outp = m.get("input") or {}, m.get("output") or {}
    out["input_description"] = _describe_body(inp)
    out["output_description"] = _describe_body(outp)
    if "jsonSchema" in inp:
        out["input_json_schema"] = inp["jsonSchema"]
    if "jsonSchema" in outp:
        out["output_json_schema"] = outp["jsonSchema"]
    out["retry_policy"] = _retry_policy({k: v for k, v in m.items() if k.startswith("retryPolicy")})
    return out


def service_metadata(svc: ServiceInfo, cfg: Config) -> dict[str, Any]:
    m = svc.manifest
    out: dict[str, Any] = {"name": svc.name, "ty": SERVICE_TYPES.get(svc.ty, svc.ty),
                           "handlers": [handler_metadata(svc, h) for h in svc.handlers.values()]}
    if m.get("documentation"):
        out["documentation"] = m["documentation"]
    if m.get("metadata"):
        out["metadata"] = m["metadata"]
    out.update({"deployment_id": svc.deployment_id, "revision": svc.revision, "public": svc.public})
    defaults = {"idempotencyRetention": DEFAULT_IDEMPOTENCY_RETENTION_MS,
                "journalRetention": int(cfg.completed_retention_s * 1000),
                "inactivityTimeout": cfg.inactivity_timeout_ms, "abortTimeout": cfg.abort_timeout_ms}
    if svc.ty == "WORKFLOW":
        defaults["workflowCompletionRetention"] = DEFAULT_IDEMPOTENCY_RETENTION_MS
    for key, name in DURATION_FIELDS.items():
        value = m.get(key, defaults.get(key))
        if value is not None:
            out[name] = format_ms(int(value))
    out["enable_lazy_state"] = bool(m.get("enableLazyState", False))
    policy = cfg.retry.overridden(m)
    out["retry_policy"] = {"initial_interval": format_ms(policy.initial_interval_ms),
                           "exponentiation_factor": float(policy.factor), "max_attempts": policy.max_attempts,
                           "max_interval": format_ms(policy.max_interval_ms),
                           "on_max_attempts": str(policy.on_max_attempts).capitalize()}
    return out


def _created_at(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}000000Z"


def deployment_response(dep: Deployment, services: list[dict[str, Any]]) -> dict[str, Any]:
    """An HTTP deployment (``DeploymentResponse`` with ``services`` as name/revision pairs, or
    ``DetailedDeploymentResponse`` with ``ServiceMetadata``)."""
    m = dep.manifest
    out: dict[str, Any] = {"id": dep.id, "uri": dep.uri,
                           "protocol_type": PROTOCOL_TYPES.get(m.get("protocolMode", ""), m.get("protocolMode")),
                           "http_version": "HTTP/1.1" if dep.use_http_11 else "HTTP/2.0",
                           "created_at": _created_at(dep.created_ms)}
    if dep.additional_headers:
        out["additional_headers"] = redact_header_map(dep.additional_headers)
    out.update({"min_protocol_version": m.get("minProtocolVersion"),
                "max_protocol_version": m.get("maxProtocolVersion")})
    if m.get("_sdk"):
        out["sdk_version"] = m["_sdk"]
    if m.get("_metadata"):
        out["metadata"] = m["_metadata"]
    out["services"] = services
    return out


def deployment_summary(dep: Deployment) -> dict[str, Any]:
    return deployment_response(dep, [{"name": s.name, "revision": s.revision} for s in dep.services])


def deployment_detail(dep: Deployment, cfg: Config) -> dict[str, Any]:
    return deployment_response(dep, [service_metadata(s, cfg) for s in dep.services])


def registered(dep: Deployment, cfg: Config) -> dict[str, Any]:
    """``RegisterDeploymentResponse``."""
    out: dict[str, Any] = {"id": dep.id, "services": [service_metadata(s, cfg) for s in dep.services],
                           "min_protocol_version": dep.manifest.get("minProtocolVersion"),
                           "max_protocol_version": dep.manifest.get("maxProtocolVersion")}
    if dep.manifest.get("_sdk"):
        out["sdk_version"] = dep.manifest["_sdk"]
    return out
