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
    public: bool = True  # false: only other services may call it (the manifest's ingressPrivate)
    manifest: dict[str, Any] = field(default_factory=dict)  # the handler's manifest entry, as discovered


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    ty: str  # SERVICE | VIRTUAL_OBJECT | WORKFLOW
    deployment_id: str
    handlers: dict[str, HandlerInfo]
    public: bool = True  # false: the ingress refuses calls from outside (ingressPrivate, PATCH public)
    revision: int = 1  # bumped by every registration that serves the service
    manifest: dict[str, Any] = field(default_factory=dict)  # the service's manifest entry, with PATCHed options

    @property
    def keyed(self) -> bool:
        return self.ty in ("VIRTUAL_OBJECT", "WORKFLOW")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "ty": self.ty, "deployment_id": self.deployment_id, "revision": self.revision,
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
    def new(uri: str, use_http_11: bool, headers: dict[str, str], manifest: dict[str, Any],
            dep_id: str | None = None) -> Deployment:
        """A deployment just discovered at ``uri``, its id ``dep_id`` or else derived from the uri."""
        from reprise.engine.discovery import deployment_id

        return Deployment.from_record({"id": dep_id or deployment_id(uri), "uri": uri, "use_http_11": use_http_11,
                                       "additional_headers": headers, "manifest_json": json.dumps(manifest),
                                       "created_ms": now_ms()})

    @staticmethod
    def from_record(rec: dict[str, Any]) -> Deployment:
        manifest = json.loads(rec["manifest_json"])
        revisions = manifest.get("_revisions") or {}
        services = [parse_service(s, rec["id"], int(revisions.get(s.get("name"), 1)))
                    for s in manifest.get("services", [])]
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

    def revision_of(self, service: str) -> int:
        return int((self.manifest.get("_revisions") or {}).get(service, 1))


OPTION_KEYS = ("idempotencyRetention", "workflowCompletionRetention", "journalRetention", "inactivityTimeout",
               "abortTimeout")


def parse_service(s: dict[str, Any], deployment_id: str, revision: int = 1) -> ServiceInfo:
    ty = s.get("ty", "SERVICE")
    default = {"VIRTUAL_OBJECT": "EXCLUSIVE", "WORKFLOW": "WORKFLOW"}.get(ty)
    handlers = {}
    inherited = {k: v for k, v in s.items() if k.startswith("retryPolicy") or k in OPTION_KEYS}
    service_public = not s.get("ingressPrivate", False)
    for h in s.get("handlers", []):
        inp = h.get("input") or {}
        out = h.get("output") or {}
        own = {k: v for k, v in h.items() if k.startswith("retryPolicy") or k in OPTION_KEYS}
        handlers[h["name"]] = HandlerInfo(h["name"], h.get("ty", default), bool(inp.get("required")),
                                          out.get("contentType"), {**inherited, **own},
                                          service_public and not h.get("ingressPrivate", False), h)
    return ServiceInfo(s["name"], ty, deployment_id, handlers, service_public, revision, s)


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

    def _on_record(self, key: bytes, record: dict[str, Any] | None) -> None:
        if record is not None:
            self._add(Deployment.from_record(record))
        else:  # a removed deployment (a tombstone on the compacted topic)
            with self._lock:
                if self._deployments.pop(key.decode(errors="replace"), None) is not None:
                    self._services = _latest_services(self._deployments.values())
                self._lock.notify_all()

    def _add(self, dep: Deployment) -> None:
        with self._lock:
            old = self._deployments.get(dep.id)
            if old is not None and old.created_ms > dep.created_ms:
                return
            self._deployments[dep.id] = dep
            self._services = _latest_services(self._deployments.values())
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

    def remove(self, dep_id: str, timeout: float = 15.0) -> None:
        """Delete a deployment (a tombstone) and wait until this view no longer has it. Its services fall
        back to their newest revision on another deployment, or are gone with it."""
        if self._producer is None:
            self._producer = Producer(producer_config(self._cfg))
        self._producer.produce(self._cfg.deployments_topic, value=None, key=dep_id.encode(), partition=0)
        if self._producer.flush(timeout) != 0:
            raise TimeoutError("deployment removal not acknowledged by Kafka")
        deadline = time.monotonic() + timeout
        with self._lock:
            while dep_id in self._deployments:
                if not self._lock.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError("deployment removal not read back from Kafka")

    def _has(self, dep: Deployment) -> bool:
        """This view holds ``dep``, or a later registration of its id (a PATCH keeps ``created_ms``)."""
        cur = self._deployments.get(dep.id)
        return cur is not None and (cur.created_ms > dep.created_ms or cur == dep)

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

    def id_for_uri(self, uri: str) -> str:
        """The id of the deployment at ``uri``: the one it was registered under (an older form of id
        included), else the id derived from the uri."""
        from reprise.engine.discovery import deployment_id

        existing = self.find_by_uri(uri)
        return existing.id if existing is not None else deployment_id(uri)


def _latest_services(deployments: Any) -> dict[str, ServiceInfo]:
    """Each service as its newest revision serves it (ties: the later registration)."""
    best: dict[str, tuple[tuple[int, int], ServiceInfo]] = {}
    for dep in deployments:
        for svc in dep.services:
            rank = (svc.revision, dep.created_ms)
            if svc.name not in best or rank >= best[svc.name][0]:
                best[svc.name] = (rank, svc)
    return {name: svc for name, (_rank, svc) in best.items()}
