"""The deployment registry: which services exist, their handlers, and where they run.

Deployments are records on a compacted topic, so every process (ingress, processors) builds the
same view by reading it from the start and following it. ``publish`` waits until the record is
back in this process's view, so a registration is visible here when the admin API answers.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Producer

from reprise.engine.clock import now_ms
from reprise.engine.config import Config
from reprise.engine.introspection import redact_header_map
from reprise.engine.kafka import produce_record, producer_config
from reprise.engine.topic_view import TopicView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HandlerInfo:
    name: str
    ty: str | None  # EXCLUSIVE | SHARED | WORKFLOW | None (plain services)
    input_required: bool = False
    output_content_type: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # retry policy, retentions: service's, then handler's


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    ty: str  # SERVICE | VIRTUAL_OBJECT | WORKFLOW
    deployment_id: str
    handlers: dict[str, HandlerInfo]

    @property
    def keyed(self) -> bool:
        return self.ty in ("VIRTUAL_OBJECT", "WORKFLOW")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "ty": self.ty, "deployment_id": self.deployment_id,
                "handlers": [{"name": h.name, "ty": h.ty} for h in self.handlers.values()]}


@dataclass(frozen=True)
class Deployment:
    id: str
    uri: str
    use_http_11: bool
    additional_headers: dict[str, str]
    manifest: dict[str, Any]
    created_ms: int
    services: list[ServiceInfo] = field(default_factory=list)

    @staticmethod
    def new(uri: str, use_http_11: bool, headers: dict[str, str], manifest: dict[str, Any]) -> Deployment:
        """A deployment just discovered at ``uri``, its id derived from the uri."""
        from reprise.engine.discovery import deployment_id

        return Deployment.from_record({"id": deployment_id(uri), "uri": uri, "use_http_11": use_http_11,
                                       "additional_headers": headers, "manifest_json": json.dumps(manifest),
                                       "created_ms": now_ms()})

    @staticmethod
    def from_record(rec: dict[str, Any]) -> Deployment:
        manifest = json.loads(rec["manifest_json"])
        services = [parse_service(s, rec["id"]) for s in manifest.get("services", [])]
        return Deployment(rec["id"], rec["uri"], rec["use_http_11"], dict(rec["additional_headers"]),
                          manifest, rec["created_ms"], services)

    def describe(self) -> dict[str, Any]:
        """As the admin API shows it: additional headers (Restate's field) with credential values redacted."""
        return {"id": self.id, "uri": self.uri, "use_http_11": self.use_http_11,
                "additional_headers": redact_header_map(self.additional_headers),
                "min_protocol_version": self.manifest.get("minProtocolVersion"),
                "max_protocol_version": self.manifest.get("maxProtocolVersion"),
                "protocol_mode": self.manifest.get("protocolMode"),
                "services": [s.describe() for s in self.services], "created_at_ms": self.created_ms}


def parse_service(s: dict[str, Any], deployment_id: str) -> ServiceInfo:
    ty = s.get("ty", "SERVICE")
    default = {"VIRTUAL_OBJECT": "EXCLUSIVE", "WORKFLOW": "WORKFLOW"}.get(ty)
    handlers = {}
    inherited = {k: v for k, v in s.items() if k.startswith("retryPolicy") or k.endswith("Retention")}
    for h in s.get("handlers", []):
        inp = h.get("input") or {}
        out = h.get("output") or {}
        own = {k: v for k, v in h.items() if k.startswith("retryPolicy") or k.endswith("Retention")}
        handlers[h["name"]] = HandlerInfo(h["name"], h.get("ty", default), bool(inp.get("required")),
                                          out.get("contentType"), {**inherited, **own})
    return ServiceInfo(s["name"], ty, deployment_id, handlers)


class Registry:
    """An in-memory view of the deployments topic, kept current by a background thread."""

    def __init__(self, cfg: Config) -> None:
        self._cfg = cfg
        self._lock = threading.Condition()
        self._deployments: dict[str, Deployment] = {}
        self._services: dict[str, ServiceInfo] = {}
        self._view = TopicView(cfg, cfg.deployments_topic, "Deployment", self._on_record)
        self._producer: Producer | None = None

    def start(self, timeout: float = 30.0) -> None:
        self._view.start(timeout)

    def stop(self) -> None:
        self._view.stop()

    def loaded(self) -> bool:
        """Every deployment on the topic at start was read (readiness)."""
        return self._view.loaded()

    def sync(self, timeout: float = 5.0) -> bool:
        """Catch up with every deployment record on the topic now (see TopicView.sync)."""
        return self._view.sync(timeout)

    def _on_record(self, _key: bytes, record: dict[str, Any] | None) -> None:
        if record is not None:
            self._add(Deployment.from_record(record))

    def _add(self, dep: Deployment) -> None:
        with self._lock:
            old = self._deployments.get(dep.id)
            if old is not None and old.created_ms > dep.created_ms:
                return
            self._deployments[dep.id] = dep
            for svc in dep.services:  # a later deployment of a service is its newest revision
                cur = self._services.get(svc.name)
                if cur is None or cur.deployment_id == dep.id or \
                        self._deployments[cur.deployment_id].created_ms <= dep.created_ms:
                    self._services[svc.name] = svc
            self._lock.notify_all()

    def publish(self, dep: Deployment, timeout: float = 15.0) -> None:
        """Write a deployment to the topic and wait until this view has it."""
        if self._producer is None:
            self._producer = Producer(producer_config(self._cfg))
        produce_record(self._producer, self._cfg.deployments_topic, 0, "Deployment", {
            "id": dep.id, "uri": dep.uri, "use_http_11": dep.use_http_11,
            "additional_headers": dep.additional_headers, "manifest_json": json.dumps(dep.manifest),
            "created_ms": dep.created_ms}, key=dep.id.encode())
        if self._producer.flush(timeout) != 0:
            raise TimeoutError("deployment record not acknowledged by Kafka")
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._has(dep):
                if not self._lock.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError("deployment record not read back from Kafka")

    def _has(self, dep: Deployment) -> bool:
        cur = self._deployments.get(dep.id)
        return cur is not None and cur.created_ms >= dep.created_ms

    def service(self, name: str) -> ServiceInfo | None:
        with self._lock:
            return self._services.get(name)

    def deployment(self, dep_id: str) -> Deployment | None:
        with self._lock:
            return self._deployments.get(dep_id)

    def services(self) -> list[ServiceInfo]:
        with self._lock:
            return sorted(self._services.values(), key=lambda s: s.name)

    def deployments(self) -> list[Deployment]:
        with self._lock:
            return sorted(self._deployments.values(), key=lambda d: d.created_ms)

    def find_by_uri(self, uri: str) -> Deployment | None:
        with self._lock:
            return next((d for d in self._deployments.values() if d.uri == uri), None)
