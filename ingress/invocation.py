"""One Invoke, whoever asks for it: the HTTP ingress and the commands router (ingress/commands.py)
check the request, derive the invocation id and build the log record here, so a command from Kafka
names, dedupes and routes exactly like the same request over HTTP. The record goes to the log
partition of its id (``InvocationId.partition``), keyed by the object key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import orjson

from reprise.engine.ids import InvocationId, idempotent_invocation_id, workflow_run_id
from reprise.engine.registry import Registry, ServiceInfo
from reprise.ingress.errors import IngressError
from reprise.schemas.invoke import new_invoke
from reprise.schemas.records import Header, Invoke, ReplyTo

# Hop-by-hop and ingress-only headers are not handed to the handler (as in Restate).
DROP_HEADERS = frozenset({"connection", "host", "content-length", "transfer-encoding", "keep-alive",
                          "idempotency-key", "idempotency-expires", "upgrade", "te"})


def target(registry: Registry, service: str, key: str | None, handler: str) -> ServiceInfo:
    """The service of a command that names its target by fields (not by an HTTP path)."""
    svc = registry.service(service)
    if svc is None:
        raise IngressError(404, f"service '{service}' not found")
    if handler not in svc.handlers:
        raise IngressError(404, f"handler '{service}/{handler}' not found")
    if svc.keyed and (key is None or not key.strip()):
        raise IngressError(400, f"{svc.ty.lower()} '{service}' needs a key")
    if not svc.keyed and key is not None:
        raise IngressError(400, f"service '{service}' is not keyed: its commands carry no key")
    return svc


def check_body(body: bytes, content_type: str) -> None:
    """A body that says it is JSON must be JSON (400 otherwise)."""
    if body and "json" in content_type:
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise IngressError(400, f"malformed JSON body: {e}") from None


def handler_headers(pairs: Iterable[tuple[str, str]]) -> list[Header]:
    """The headers a handler sees, from (lower-cased name, value) pairs."""
    return [{"name": k, "value": v} for k, v in pairs if k not in DROP_HEADERS]


def invocation_id(svc: ServiceInfo, key: str | None, handler: str, idempotency_key: str | None,
                  fresh: Callable[[], InvocationId] | None = None) -> InvocationId:
    """The id the invocation gets: a workflow's run has one per workflow id, an idempotency key names
    one invocation per (service, key, handler), anything else gets ``fresh()`` (a random id if None)."""
    is_run = svc.handlers[handler].ty == "WORKFLOW"
    if idempotency_key is not None:
        if is_run:
            raise IngressError(400, "an idempotency key is not allowed on a workflow's run: the workflow id is one")
        if not idempotency_key.strip():
            raise IngressError(400, "the idempotency key is empty")
        return idempotent_invocation_id(svc.name, key, handler, idempotency_key)
    if is_run:
        if key is None:  # target() or the path gave one: a workflow is keyed
            raise IngressError(400, f"workflow '{svc.name}' needs a key")
        return workflow_run_id(svc.name, key)
    if fresh is not None:
        return fresh()
    return InvocationId.new(key) if key is not None else InvocationId.random()


def invoke_record(inv: InvocationId, svc: ServiceInfo, key: str | None, handler: str, body: bytes,
                  headers: list[Header], idempotency_key: str | None, execute_at_ms: int | None,
                  created_ms: int, reply_to: ReplyTo | None = None) -> Invoke:
    """The Invoke log record of a request to ``svc``'s ``handler``."""
    return new_invoke(invocation_id=str(inv), service=svc.name, handler=handler, key=key,
                      handler_kind=svc.handlers[handler].ty, input=body, headers=headers,
                      idempotency_key=idempotency_key, execute_at_ms=execute_at_ms, created_ms=created_ms,
                      reply_to=reply_to)


def log_key(key: str | None) -> bytes | None:
    """The Kafka key of an Invoke on the log: its object key (none for a plain service)."""
    return (key or "").encode() or None
