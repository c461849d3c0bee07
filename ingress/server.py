"""The HTTP ingress, following Restate's API: call, send, attach/output, awakeables, health.

``POST /{Service}/{handler}``, ``/{Object}/{key}/{handler}``, ``/{Workflow}/{id}/{handler}``, each
with an optional ``/send`` suffix. A call waits for the result; a send answers 202 once Kafka has
acknowledged the Invoke record (acks=all). Errors are ``{"code": N, "message": "..."}``.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from engine.config import Config
from engine.ids import (
    InvocationId,
    idempotent_invocation_id,
    parse_awakeable_id,
    random_routing_key,
    workflow_run_id,
)
from engine.registry import Registry, ServiceInfo
from ingress.delay import parse_delay_ms
from ingress.errors import IngressError, error_response
from ingress.log_client import LogClient

# Hop-by-hop and ingress-only headers are not handed to the handler (as in Restate).
_DROP_HEADERS = {"connection", "host", "content-length", "transfer-encoding", "keep-alive",
                 "idempotency-key", "idempotency-expires", "upgrade", "te"}


DEFAULT_IDEMPOTENCY_RETENTION_MS = 24 * 3600 * 1000


class Ingress:
    def __init__(self, cfg: Config, registry: Registry) -> None:
        self.cfg = cfg
        self.registry = registry
        self.log = LogClient(cfg, "ingress")
        self._inflight = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.cfg.max_message_bytes, middlewares=[self._errors])
        r = app.router
        r.add_get("/restate/health", self.health)
        r.add_route("*", "/restate/workflow/{service}/{key}/{mode:attach|output}", self.workflow_result)
        r.add_route("*", "/restate/invocation/{id}/{mode:attach|output}", self.invocation_result)
        r.add_route("*", "/restate/invocation/{service}/{handler}/{idem}/{mode:attach|output}", self.idempotent_result)
        r.add_route("*", "/restate/invocation/{service}/{key}/{handler}/{idem}/{mode:attach|output}",
                    self.idempotent_result)
        for prefix in ("/restate/awakeables", "/restate/a"):
            r.add_route("*", prefix + "/{id}/{action:resolve|reject}", self.awakeable)
        r.add_route("*", r"/{path:[\s\S]*}", self.invoke)
        self.log.serve_with(app)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except IngressError as e:
            resp = error_response(e.code, e.message)
            resp.headers.update(e.headers)
            return resp
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, f"request body exceeds the maximum of {self.cfg.max_message_bytes} bytes")
        except web.HTTPException as e:  # the router's own 404/405: same error body as everything else
            if e.status < 400:
                raise
            return error_response(e.status, f"{e.reason}: {request.method} {request.path!r}")

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({})

    # call and send ---------------------------------------------------------------------------
    async def invoke(self, request: web.Request) -> web.Response:
        _check_method(request)
        svc, key, handler, send = self._route(request.rel_url.raw_path)
        body = await request.read()
        if body and "json" in request.headers.get("content-type", ""):
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError as e:
                raise IngressError(400, f"malformed JSON body: {e}") from None
        headers = [{"name": k.lower(), "value": v} for k, v in request.headers.items()
                   if k.lower() not in _DROP_HEADERS]
        kind = svc.handlers[handler].ty
        is_run = kind == "WORKFLOW"
        execute_at = self._delay(request, send, svc, is_run)
        idem = request.headers.get("idempotency-key")
        if idem is not None and is_run:
            raise IngressError(400, "an idempotency key is not allowed on a workflow's run: the workflow id is one")
        if idem is not None and not idem.strip():
            raise IngressError(400, "the idempotency-key header is empty")
        if is_run:
            inv = workflow_run_id(svc.name, key)
        elif idem is not None:
            inv = idempotent_invocation_id(svc.name, key, handler, idem)
        else:
            inv = InvocationId.new(key if key is not None else random_routing_key())
        record = {
            "invocation_id": str(inv), "service": svc.name, "handler": handler, "key": key,
            "handler_kind": kind, "input": body, "headers": headers, "idempotency_key": idem, "caller": None,
            "execute_at_ms": execute_at, "created_ms": int(time.time() * 1000), "reply_to": None, "ack_to": None,
        }
        partition, rkey = self.log.partition_of(inv), (key or "").encode() or None
        extra = self._idempotency_headers(svc, handler) if idem is not None else {}
        async with self._admission():
            if send:
                status = "Accepted"
                if is_run or idem is not None:  # only the partition knows whether this id ran before
                    record["ack_to"] = self.log.reply_to(f"ack-{uuid.uuid4().hex}")
                    ack = await self.log.request("Invoke", partition, record, record["ack_to"]["request_id"], rkey)
                    status = (ack["value"] or b"Accepted").decode()
                else:
                    await self.log.produce("Invoke", partition, record, rkey)
                resp = _json(202, {"invocationId": str(inv), "status": status}, str(inv))
            else:
                record["reply_to"] = self.log.reply_to(f"call-{uuid.uuid4().hex}")
                reply = await self.log.request("Invoke", partition, record, record["reply_to"]["request_id"], rkey)
                resp = self._result(svc.handlers[handler].output_content_type, reply)
        resp.headers.update(extra)
        return resp

    @contextlib.asynccontextmanager
    async def _admission(self) -> AsyncIterator[None]:
        """Bounded in-flight requests: past the limit, 429 with Retry-After instead of an unbounded queue."""
        if self._inflight >= self.cfg.max_inflight_requests:
            raise IngressError(429, f"overloaded: {self._inflight} requests in flight; retry later",
                               {"retry-after": "1"})
        self._inflight += 1
        try:
            yield
        finally:
            self._inflight -= 1

    def _idempotency_headers(self, svc: ServiceInfo, handler: str) -> dict[str, str]:
        retention = svc.handlers[handler].options.get("idempotencyRetention") or DEFAULT_IDEMPOTENCY_RETENTION_MS
        expires = datetime.now(UTC) + timedelta(milliseconds=int(retention))
        return {"idempotency-expires": expires.isoformat(timespec="seconds").replace("+00:00", "Z")}

    def _delay(self, request: web.Request, send: bool, svc: ServiceInfo, is_run: bool) -> int | None:
        if "delay" not in request.query:
            return None
        if not send:
            raise IngressError(400, "delay is only allowed on /send")
        if is_run:
            raise IngressError(400, "delay is not allowed on a workflow's run")
        try:
            return int(time.time() * 1000) + parse_delay_ms(request.query["delay"])
        except ValueError as e:
            raise IngressError(400, str(e)) from None

    def _route(self, raw_path: str) -> tuple[ServiceInfo, str | None, str, bool]:
        parts = [unquote(p) for p in raw_path.strip("/").split("/")] if raw_path.strip("/") else []
        if not parts:
            raise IngressError(404, "no service in path: expected /{service}/{handler}")
        svc = self.registry.service(parts[0])
        if svc is None:
            raise IngressError(404, f"service '{parts[0]}' not found")
        rest = parts[1:]
        send = len(rest) == (3 if svc.keyed else 2) and rest[-1] == "send"
        if send:
            rest = rest[:-1]
        if svc.keyed:
            if len(rest) != 2 or not rest[0]:
                raise IngressError(400, f"bad path for {svc.ty.lower()} '{svc.name}': expected "
                                        f"/{svc.name}/{{key}}/{{handler}}[/send]")
            key, handler = rest
            if not key.strip():
                raise IngressError(400, f"empty key for {svc.ty.lower()} '{svc.name}'")
        else:
            if len(rest) != 1:
                raise IngressError(400, f"bad path for service '{svc.name}': expected /{svc.name}/{{handler}}[/send]")
            key, handler = None, rest[0]
        if handler not in svc.handlers:
            raise IngressError(404, f"handler '{svc.name}/{handler}' not found")
        return svc, key, handler, send

    # results ------------------------------------------------------------------------------------
    async def workflow_result(self, request: web.Request) -> web.Response:
        _check_method(request)
        svc = self.registry.service(request.match_info["service"])
        if svc is None or svc.ty != "WORKFLOW":
            raise IngressError(404, f"workflow '{request.match_info['service']}' not found")
        inv = workflow_run_id(svc.name, request.match_info["key"])
        run = next((h for h in svc.handlers.values() if h.ty == "WORKFLOW"), None)
        return await self._get_result(inv, request.match_info["mode"], run.output_content_type if run else None)

    async def invocation_result(self, request: web.Request) -> web.Response:
        _check_method(request)
        try:
            inv = InvocationId.parse(request.match_info["id"])
        except ValueError as e:
            raise IngressError(400, str(e)) from None
        return await self._get_result(inv, request.match_info["mode"], None)

    async def idempotent_result(self, request: web.Request) -> web.Response:
        """Attach to, or read, the invocation an idempotency key names."""
        _check_method(request)
        m = request.match_info
        svc = self.registry.service(m["service"])
        if svc is None or m["handler"] not in svc.handlers:
            raise IngressError(404, f"handler '{m['service']}/{m['handler']}' not found")
        inv = idempotent_invocation_id(svc.name, m.get("key"), m["handler"], m["idem"])
        return await self._get_result(inv, m["mode"], svc.handlers[m["handler"]].output_content_type)

    async def _get_result(self, inv: InvocationId, mode: str, content_type: str | None) -> web.Response:
        reply_to = self.log.reply_to(f"{mode}-{uuid.uuid4().hex}")
        reply = await self.log.request("Attach", self.log.partition_of(inv), {
            "invocation_id": str(inv), "mode": mode, "reply_to": reply_to}, reply_to["request_id"])
        return self._result(content_type, reply)

    def _result(self, content_type: str | None, reply: dict[str, Any]) -> web.Response:
        inv = reply["invocation_id"]
        if reply["failure"] is not None:
            f = reply["failure"]
            resp = error_response(f["code"], f["message"], source="invocation")
            resp.headers["x-restate-id"] = inv
            return resp
        return web.Response(status=200, body=reply["value"] or b"", headers={
            "content-type": content_type or "application/json", "x-restate-id": inv})

    # awakeables -------------------------------------------------------------------------------
    async def awakeable(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            raise IngressError(405, f"method {request.method} not allowed: use POST")
        try:
            inv, idx = parse_awakeable_id(request.match_info["id"])
        except ValueError as e:
            raise IngressError(400, str(e)) from None
        body = await request.read()
        if request.match_info["action"] == "resolve":
            value, failure = body, None
        else:
            value, failure = None, {"code": 500, "message": body.decode("utf-8", "replace")}
        await self.log.produce("Signal", self.log.partition_of(inv), {
            "invocation_id": str(inv), "idx": idx, "name": None, "value": value, "failure": failure})
        return web.Response(status=202)


def _check_method(request: web.Request) -> None:
    if request.method not in ("GET", "POST"):
        raise IngressError(405, f"method {request.method} not allowed: use POST (or GET)")


def _json(status: int, body: dict[str, Any], inv: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json",
                        headers={"x-restate-id": inv})
