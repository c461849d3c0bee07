"""The admin API (port 9070), following Restate's: health, deployments, services, metrics."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reprise.engine.config import Config
from reprise.engine.discovery import DiscoveryError, discover
from reprise.engine.health import Health
from reprise.engine.identity import signer_from
from reprise.engine.ids import InvocationId
from reprise.engine.introspection import Introspector, PartitionControl, redact_headers
from reprise.engine.registry import Deployment, Registry
from reprise.engine.subscriptions import SubscriptionRegistry
from reprise.ingress.admin_guard import guard, read_token, uri_problem
from reprise.ingress.cluster import ClusterReads
from reprise.ingress.errors import IngressError, error_response
from reprise.ingress.health import add_health_routes
from reprise.ingress.log_client import LogClient


class Admin:
    def __init__(self, cfg: Config, registry: Registry, introspector: Introspector | None = None,
                 subscriptions: SubscriptionRegistry | None = None,
                 partitions: PartitionControl | None = None, health: Health | None = None,
                 cluster: ClusterReads | None = None) -> None:
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
        app = web.Application(middlewares=[guard(self.token), self._errors])
        r = app.router
        add_health_routes(app, self.health)
        r.add_get("/partitions", self.list_partitions)
        r.add_post("/partitions/snapshot", self.snapshot)
        r.add_post("/deployments", self.register)
        r.add_get("/deployments", self.list_deployments)
        r.add_get("/deployments/{id}", self.get_deployment)
        r.add_get("/services", self.list_services)
        r.add_get("/services/{name}", self.get_service)
        r.add_get("/metrics", self.metrics)
        r.add_get("/invocations", self.list_invocations)
        r.add_get("/invocations/{id}", self.describe_invocation)
        r.add_get("/services/{name}/state/{key}", self.get_state)
        r.add_get("/timers", self.list_timers)
        r.add_get("/ui", self.ui)
        r.add_post("/subscriptions", self.create_subscription)
        r.add_get("/subscriptions", self.list_subscriptions)
        r.add_delete("/subscriptions/{id}", self.delete_subscription)
        r.add_patch("/invocations/{id}/{command}", self.invocation_command)
        r.add_delete("/invocations/{id}", self.invocation_command)  # legacy: ?mode=cancel|kill|purge
        if self.cluster is not None:
            self.cluster.add_routes(app, self.registry)
        self.log.serve_with(app)
        return app

    def _need_introspector(self) -> Introspector:
        if self.introspector is None:
            raise IngressError(501, "this admin process holds no partitions: ask the processor's admin API")
        return self.introspector

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except IngressError as e:
            return error_response(e.code, e.message)

    async def list_invocations(self, request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            return error_response(400, "limit must be an integer")
        status = request.query.get("status")
        if status is not None and status.upper() not in STATUSES:
            return error_response(400, f"unknown status {status!r}: expected one of {', '.join(STATUSES)}")
        rows = await _in_thread(self._need_introspector().invocations, status, limit)
        return web.json_response({"invocations": rows})

    async def describe_invocation(self, request: web.Request) -> web.Response:
        inv = request.match_info["id"]
        try:
            InvocationId.parse(inv)
        except ValueError as e:
            return error_response(400, str(e))
        found = await _in_thread(self._need_introspector().describe, inv)
        if found is None:
            return error_response(404, f"invocation {inv} not found")
        return web.json_response(redact_headers(found))

    async def get_state(self, request: web.Request) -> web.Response:
        name, key = request.match_info["name"], request.match_info["key"]
        svc = self.registry.service(name)
        if svc is None or not svc.keyed:
            return error_response(404, f"no virtual object or workflow named '{name}'")
        state = await _in_thread(self._need_introspector().state, name, key)
        return web.json_response({"service": name, "key": key, "state": state})

    async def list_timers(self, request: web.Request) -> web.Response:
        timers = await _in_thread(self._need_introspector().timers, int(request.query.get("limit", "100")))
        return web.json_response({"timers": timers})

    def _need_subscriptions(self) -> SubscriptionRegistry:
        if self.subscriptions is None:
            raise IngressError(501, "subscriptions are not served by this admin process")
        return self.subscriptions

    async def create_subscription(self, request: web.Request) -> web.Response:
        """Restate's body: {"source": "kafka://<cluster>/<topic>", "sink": "service://<Service>/<handler>"}."""
        subs = self._need_subscriptions()
        try:
            body = json.loads(await request.read() or b"null")
            source, sink = body["source"], body["sink"]
        except (ValueError, KeyError, TypeError):
            return error_response(400, 'expected {"source": "kafka://default/<topic>", "sink": "service://<S>/<h>"}')
        topic = source.rsplit("/", 1)[-1] if source.startswith("kafka://") else source
        target = sink.removeprefix("service://").split("/")
        if not topic or len(target) != 2:
            return error_response(400, f"bad source {source!r} or sink {sink!r}")
        svc = self.registry.service(target[0])
        if svc is None or target[1] not in svc.handlers:
            return error_response(404, f"handler '{'/'.join(target)}' not found")
        sub, created = await _in_thread(subs.create, topic, target[0], target[1])
        return web.json_response(sub.describe(), status=201 if created else 200)

    async def list_subscriptions(self, _r: web.Request) -> web.Response:
        return web.json_response({"subscriptions": [s.describe() for s in self._need_subscriptions().all()]})

    async def delete_subscription(self, request: web.Request) -> web.Response:
        if not await _in_thread(self._need_subscriptions().delete, request.match_info["id"]):
            return error_response(404, f"subscription {request.match_info['id']} not found")
        return web.Response(status=202)

    async def ui(self, _r: web.Request) -> web.Response:
        return web.Response(body=(Path(__file__).parent / "static" / "ui.html").read_bytes(),
                            content_type="text/html")

    async def invocation_command(self, request: web.Request) -> web.Response:
        """PATCH /invocations/{id}/cancel|kill|purge|pause|resume, answered by the invocation's partition."""
        command = request.match_info.get("command") or request.query.get("mode", "cancel")
        try:
            inv = InvocationId.parse(request.match_info["id"])
        except ValueError as e:
            return error_response(400, str(e))
        request_id = f"admin-{uuid.uuid4().hex}"
        try:
            reply = await self.log.request("AdminCommand", self.log.partition_of(inv), {
                "invocation_id": str(inv), "command": command, "reply_to": self.log.reply_to(request_id)},
                request_id)
        except IngressError as e:
            return error_response(e.code, e.message)
        if reply["failure"] is not None:
            return error_response(reply["failure"]["code"], reply["failure"]["message"])
        answer = json.loads(reply["value"])
        return web.json_response(answer, status=answer["code"])

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
        taken = [await _in_thread(control.snapshot, p) for p in targets]
        if wanted is not None and taken[0] is None:
            return error_response(404, f"partition {wanted} is not owned by this processor")
        return web.json_response({"snapshots": [t for t in taken if t is not None]})

    async def register(self, request: web.Request) -> web.Response:
        try:
            body: Any = json.loads(await request.read() or b"null")
        except ValueError:
            return error_response(400, "body is not JSON: expected {\"uri\": \"http://...\"}")
        if not isinstance(body, dict) or not isinstance(body.get("uri"), str):
            return error_response(400, "expected a JSON object with a string 'uri'")
        uri = body["uri"].rstrip("/")
        problem = uri_problem(uri)
        if problem is not None:
            return error_response(400, f"bad deployment uri {uri!r}: {problem}")
        use_http_11 = bool(body.get("use_http_11", False))
        force = body.get("force") is True
        headers = body.get("additional_headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            return error_response(400, "additional_headers must map names to strings")
        try:
            manifest = await discover(uri, use_http_11, headers, signer=self.signer)
        except DiscoveryError as e:
            return error_response(400, f"discovery failed: {e}")
        existing = self.registry.find_by_uri(uri)
        if existing is not None and not force:
            if existing.manifest == manifest and existing.use_http_11 == use_http_11:
                return web.json_response(self._created(existing), status=200)
            return error_response(409, f"deployment {existing.id} at {uri} exists with a different manifest; "
                                       "pass \"force\": true to replace it")
        dep = Deployment.new(uri, use_http_11, headers, manifest)
        taken = None if force else self._taken_over(dep)
        if taken is not None:
            return error_response(409, taken)
        await _in_thread(self.registry.publish, dep)
        return web.json_response(self._created(dep), status=201)

    def _taken_over(self, dep: Deployment) -> str | None:
        """Why ``dep`` may not be registered without force: it serves a service another deployment serves."""
        for s in dep.manifest["services"]:
            current = self.registry.service(s["name"])
            if current is not None and current.deployment_id != dep.id:
                owner = self.registry.deployment(current.deployment_id)
                return (f"service '{s['name']}' is already served by deployment {current.deployment_id}"
                        f"{f' at {owner.uri}' if owner is not None else ''}; pass \"force\": true to move it "
                        f"to {dep.uri} (invocations that already ran an attempt keep their deployment)")
        return None

    @staticmethod
    def _created(dep: Deployment) -> dict[str, Any]:
        d = dep.describe()
        return {"id": d["id"], "services": d["services"], "min_protocol_version": d["min_protocol_version"],
                "max_protocol_version": d["max_protocol_version"], "sdk_version": dep.manifest.get("_sdk")}

    async def list_deployments(self, _r: web.Request) -> web.Response:
        return web.json_response({"deployments": [d.describe() for d in self.registry.deployments()]})

    async def get_deployment(self, request: web.Request) -> web.Response:
        dep = self.registry.deployment(request.match_info["id"])
        if dep is None:
            return error_response(404, f"deployment {request.match_info['id']} not found")
        return web.json_response(dep.describe())

    async def list_services(self, _r: web.Request) -> web.Response:
        return web.json_response({"services": [s.describe() for s in self.registry.services()]})

    async def get_service(self, request: web.Request) -> web.Response:
        svc = self.registry.service(request.match_info["name"])
        if svc is None:
            return error_response(404, f"service '{request.match_info['name']}' not found")
        return web.json_response(svc.describe())

    async def metrics(self, _r: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"content-type": CONTENT_TYPE_LATEST})


STATUSES = ("SCHEDULED", "INBOXED", "INVOKED", "SUSPENDED", "BACKING_OFF", "PAUSED", "COMPLETED")


async def _in_thread(fn: Any, *args: Any) -> Any:
    import asyncio
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
