"""The admin API (port 9070), following Restate's: health, deployments, services, metrics."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reprise.engine.config import Config
from reprise.engine.health import Health
from reprise.engine.identity import signer_from
from reprise.engine.ids import InvocationId
from reprise.engine.introspection import Introspector, PartitionControl, redact_headers
from reprise.engine.registry import Registry
from reprise.engine.subscriptions import SubscriptionRegistry
from reprise.ingress.admin_guard import guard, read_token
from reprise.ingress.admin_registry import RegistryRoutes
from reprise.ingress.admin_restart import RestartRoutes
from reprise.ingress.admin_schedules import ScheduleRoutes
from reprise.ingress.admin_state import StateRoutes
from reprise.ingress.admin_subscriptions import SubscriptionRoutes
from reprise.ingress.admin_version import add_versioned_paths, version_information
from reprise.ingress.cluster import ClusterReads
from reprise.ingress.errors import IngressError, error_response
from reprise.ingress.health import add_health_routes
from reprise.ingress.log_client import LogClient
from reprise.ingress.metrics import count_admin_requests
from reprise.ingress.request_io import in_thread


class Admin:
    def __init__(self, cfg: Config, registry: Registry, introspector: Introspector | None = None,
                 subscriptions: SubscriptionRegistry | None = None,
                 partitions: PartitionControl | None = None, health: Health | None = None,
                 cluster: ClusterReads | None = None) -> None:
        self.cfg = cfg
        self.registry = registry
        self.cluster = cluster  # POST /query and the routes other processes' cluster-wide reads use
        self.health = health
        self.partitions = partitions
        self.subscriptions = subscriptions
        self.log = LogClient(cfg, "admin")
        self.introspector = introspector
        self.token = read_token(cfg.admin_token, cfg.admin_token_file)  # "": not enforced (dev on loopback)
        self.signer = signer_from(cfg.request_identity_private_key_pem_file)  # discovery is signed too

    def app(self) -> web.Application:
        app = web.Application(middlewares=[count_admin_requests, guard(self.token), self._errors])
        r = app.router
        add_health_routes(app, self.health)
        r.add_get("/partitions", self.list_partitions)
        r.add_post("/partitions/snapshot", self.snapshot)
        RegistryRoutes(self.cfg, self.registry, self.signer, self._pinned_counts).add_to(r)
        r.add_get("/version", self.version)
        r.add_get("/metrics", self.metrics)
        r.add_get("/invocations", self.list_invocations)
        r.add_get("/invocations/{id}", self.describe_invocation)
        r.add_get("/services/{name}/state/{key}", self.get_state)
        r.add_get("/timers", self.list_timers)
        r.add_get("/ui", self.ui)
        SubscriptionRoutes(self.cfg, self.registry, self._need_subscriptions).add_to(r)
        RestartRoutes(self.registry, self.log).add_to(r)  # before the generic command route
        r.add_patch("/invocations/{id}/{command}", self.invocation_command)
        r.add_delete("/invocations/{id}", self.invocation_command)  # legacy: ?mode=cancel|kill|purge
        ScheduleRoutes(self.registry, self.log, self._need_introspector).add_to(r)
        StateRoutes(self.registry, self.log).add_to(r)
        if self.cluster is not None:
            self.cluster.add_routes(app, self.registry)
        add_versioned_paths(r)  # last: every route above is served under /v2../v4 too (Restate's CLI calls /v4/...)
        self.log.serve_with(app)
        return app

    def _pinned_counts(self) -> dict[str, int] | None:
        """Invocations still running per deployment: known where this process holds every partition."""
        return self.introspector.pinned_counts() if self.introspector is not None else None

    async def version(self, _r: web.Request) -> web.Response:
        return web.json_response(version_information(self.cfg))

    def _need_introspector(self) -> Introspector:
        if self.introspector is None:
            raise IngressError(501, "this admin process holds no partitions: ask the processor's admin API")
        return self.introspector

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except IngressError as e:
            return error_response(e.code, e.message, e.restate_code)
        except TimeoutError as e:  # Kafka did not acknowledge, or read back, a registry record in time
            return error_response(503, f"the deployments topic did not answer in time: {e}")

    async def list_invocations(self, request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            return error_response(400, "limit must be an integer")
        status = request.query.get("status")
        if status is not None and status.upper() not in STATUSES:
            return error_response(400, f"unknown status {status!r}: expected one of {', '.join(STATUSES)}")
        rows = await in_thread(self._need_introspector().invocations, status, limit)
        return web.json_response({"invocations": rows})

    async def describe_invocation(self, request: web.Request) -> web.Response:
        inv = request.match_info["id"]
        try:
            InvocationId.parse(inv)
        except ValueError as e:
            return error_response(400, str(e))
        found = await in_thread(self._need_introspector().describe, inv)
        if found is None:
            return error_response(404, f"invocation {inv} not found")
        return web.json_response(redact_headers(found))

    async def get_state(self, request: web.Request) -> web.Response:
        name, key = request.match_info["name"], request.match_info["key"]
        svc = self.registry.service(name)
        if svc is None or not svc.keyed:
            return error_response(404, f"no virtual object or workflow named '{name}'")
        state = await in_thread(self._need_introspector().state, name, key)
        return web.json_response({"service": name, "key": key, "state": state})

    async def list_timers(self, request: web.Request) -> web.Response:
        timers = await in_thread(self._need_introspector().timers, int(request.query.get("limit", "100")))
        return web.json_response({"timers": timers})

    def _need_subscriptions(self) -> SubscriptionRegistry:
        if self.subscriptions is None:
            raise IngressError(501, "subscriptions are not served by this admin process")
        return self.subscriptions

    async def ui(self, _r: web.Request) -> web.Response:
        return web.Response(body=(Path(__file__).parent / "static" / "ui.html").read_bytes(),
                            content_type="text/html")

    async def invocation_command(self, request: web.Request) -> web.Response:
        """PATCH /invocations/{id}/cancel|kill|purge|purge-journal|pause|resume, answered by the invocation's
        partition."""
        command = request.match_info.get("command") or request.query.get("mode", "cancel")
        try:
            inv = InvocationId.parse(request.match_info["id"])
        except ValueError as e:
            return error_response(400, f"The request field 'invocation_id' is invalid. Reason: {e}")
        request_id = f"admin-{uuid.uuid4().hex}"
        try:
            reply = await self.log.request("AdminCommand", self.log.partition_of(inv), {
                "invocation_id": str(inv), "command": command, "reply_to": self.log.reply_to(request_id)},
                request_id)
        except IngressError as e:
            return error_response(e.code, e.message)
        if reply["failure"] is not None:
            return error_response(reply["failure"]["code"], reply["failure"]["message"])
        if request.method == "DELETE":
            return web.Response(status=202)  # Restate's answer to the legacy DELETE ?mode=...
        return web.Response(status=json.loads(reply["value"])["code"])  # Restate answers success without a body

    def _need_partitions(self) -> PartitionControl:
        if self.partitions is None:
            raise IngressError(501, "this process owns no partitions: ask a processor's admin API")
        return self.partitions

    async def list_partitions(self, _r: web.Request) -> web.Response:
        return web.json_response({"partitions": self._need_partitions().owned()})

    async def snapshot(self, request: web.Request) -> web.Response:
        """POST /partitions/snapshot[?partition=N]: snapshot owned partitions now."""
        control = self._need_partitions()
        wanted = request.query.get("partition")
        if wanted is not None and not wanted.isdigit():
            return error_response(400, "partition must be a number")
        targets = [int(wanted)] if wanted is not None else [row["partition"] for row in control.owned()]
        taken = [await in_thread(control.snapshot, p) for p in targets]
        if wanted is not None and taken[0] is None:
            return error_response(404, f"partition {wanted} is not owned by this processor")
        return web.json_response({"snapshots": [t for t in taken if t is not None]})

    async def metrics(self, _r: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"content-type": CONTENT_TYPE_LATEST})


STATUSES = ("SCHEDULED", "INBOXED", "INVOKED", "SUSPENDED", "BACKING_OFF", "PAUSED", "COMPLETED")
