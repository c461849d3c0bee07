"""The HTTP ingress, following Restate's API: call, send, attach/output, awakeables, health.

``POST /{Service}/{handler}``, ``/{Object}/{key}/{handler}``, ``/{Workflow}/{id}/{handler}``, each
with an optional ``/send`` suffix. A call waits for the result; a send answers 202 once Kafka has
acknowledged the Invoke record (acks=all). Errors are ``{"code": N, "message": "..."}``.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from time import perf_counter
from typing import Any
from urllib.parse import unquote

import orjson

from reprise.engine.clock import now_ms
from reprise.engine.config import Config
from reprise.engine.ids import InvocationId, idempotent_invocation_id, parse_awakeable_id, random_hex, workflow_run_id
from reprise.engine.local_replies import LocalReplies
from reprise.engine.registry import Registry, ServiceInfo
from reprise.ingress.attach import AttachWaiters
from reprise.ingress.delay import parse_delay_ms
from reprise.ingress.errors import IngressError, error_reply
from reprise.ingress.http1 import HttpServer, Request, Response
from reprise.ingress.invocation import check_body, handler_headers, invocation_id, invoke_record, log_key
from reprise.ingress.log_client import LogClient
from reprise.ingress.metrics import INGRESS

DEFAULT_IDEMPOTENCY_RETENTION_MS = 24 * 3600 * 1000


_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"/restate/health"), "health"),
    (re.compile(r"/restate/workflow/(?P<service>[^/]+)/(?P<key>[^/]+)/(?P<mode>attach|output)"), "workflow_result"),
    (re.compile(r"/restate/invocation/(?P<id>[^/]+)/(?P<mode>attach|output)"), "invocation_result"),
    (re.compile(r"/restate/invocation/(?P<service>[^/]+)/(?P<handler>[^/]+)/(?P<idem>[^/]+)/(?P<mode>attach|output)"),
     "idempotent_result"),
    (re.compile(r"/restate/invocation/(?P<service>[^/]+)/(?P<key>[^/]+)/(?P<handler>[^/]+)/(?P<idem>[^/]+)"
                r"/(?P<mode>attach|output)"), "idempotent_result"),
    (re.compile(r"/restate/(?:awakeables|a)/(?P<id>[^/]+)/(?P<action>resolve|reject)"), "awakeable"),
]
# the metrics' route kind of each route ("": its mode, attach or output)
_KIND_OF_ROUTE = {"health": "health", "workflow_result": "", "invocation_result": "", "idempotent_result": "",
                  "awakeable": "awakeable"}


class Ingress:
    def __init__(self, cfg: Config, registry: Registry, local_replies: LocalReplies | None = None) -> None:
        self.cfg = cfg
        self.registry = registry
        self.log = LogClient(cfg, "ingress", local_replies)
        self._admission = Admission(cfg.max_inflight_requests)
        self._attached = AttachWaiters(cfg.max_attach_waiters, cfg.max_attach_waiters_per_invocation)
        self.http = HttpServer(self.handle, error_reply, cfg.max_message_bytes, on_refused=INGRESS.refused)

    async def start(self, host: str, port: int) -> None:
        self.log.start()
        await self.http.start(host, port)

    async def close(self) -> None:
        await self.http.close()
        self.log.stop()

    async def handle(self, request: Request) -> Response:
        """Route a request; an IngressError becomes Restate's error body. Every answer is counted
        by route kind and status, with the registered service and handler it named (ingress/metrics.py)."""
        started = perf_counter()
        INGRESS.in_flight += 1
        kind, service, handler, status = "", "", "", 500
        try:
            if request.path.startswith("/restate/"):
                for pattern, name in _ROUTES:
                    m = pattern.fullmatch(request.path)
                    if m is not None:
                        params = {k: unquote(v) for k, v in m.groupdict().items()}
                        kind = _KIND_OF_ROUTE[name] or params["mode"]
                        resp = await getattr(self, name)(request, params)
                        status = resp.status
                        return resp
            _check_method(request)
            svc, key, handler, send = self._route(*_call_or_send(request.path))
            kind, service = "send" if send else "call", svc.name
            resp = await self.invoke(request, svc, key, handler, send)
            status = resp.status
            return resp
        except IngressError as e:
            resp = error_reply(e.code, e.message)
            resp.headers.update(e.headers)
            status = resp.status
            return resp
        except asyncio.CancelledError:
            status = 499  # the client went away before its answer (as nginx counts it)
            raise
        finally:  # a handler that raised anything else is answered 500 by the HTTP layer
            INGRESS.in_flight -= 1
            if not kind:  # refused before it was routed: a call or a send by its path
                kind = "send" if request.path.endswith("/send") or request.path.startswith("/restate/send/") else "call"
            INGRESS.observe(kind, status, service, handler, perf_counter() - started)

    async def health(self, request: Request, _params: dict[str, str]) -> Response:
        if request.method not in ("GET", "HEAD"):
            raise IngressError(405, f"method {request.method} not allowed: use GET")
        return Response(200, b"{}", {"content-type": "application/json"})

    # call and send ---------------------------------------------------------------------------
    async def invoke(self, request: Request, svc: ServiceInfo, key: str | None, handler: str, send: bool) -> Response:
        """A call or a send to a handler ``handle`` routed the request to."""
        body = request.body
        check_body(body, request.headers.get("content-type", ""))
        headers = handler_headers(request.header_list)
        is_run = svc.handlers[handler].ty == "WORKFLOW"
        execute_at = self._delay(request, send, svc, is_run)
        idem = request.headers.get("idempotency-key")
        if idem is not None and not idem.strip() and not is_run:
            raise IngressError(400, "the idempotency-key header is empty")
        inv = invocation_id(svc, key, handler, idem)
        record = invoke_record(inv, svc, key, handler, body, headers, idem, execute_at, now_ms())
        inv_id = record["invocation_id"]  # str(inv) costs a base62 encoding: once a request
        assert inv_id is not None  # invoke_record names it
        partition, rkey = self.log.partition_of(inv), log_key(key)
        extra = self._idempotency_headers(svc, handler) if idem is not None else {}
        with self._admission:
            if send:
                status = "Accepted"
                if is_run or idem is not None:  # only the partition knows whether this id ran before
                    ack_to = record["ack_to"] = self.log.reply_to(f"ack-{random_hex()}")
                    ack = await self.log.request("Invoke", partition, record, ack_to["request_id"], rkey)
                    status = (ack["value"] or b"Accepted").decode()
                else:
                    await self.log.produce("Invoke", partition, record, rkey)
                resp = _json(202, {"invocationId": inv_id, "status": status}, inv_id)
            else:
                reply_to = record["reply_to"] = self.log.reply_to(f"call-{random_hex()}")
                reply = await self.log.request("Invoke", partition, record, reply_to["request_id"], rkey)
                resp = self._result(svc.handlers[handler].output_content_type, reply)
        resp.headers.update(extra)
        return resp

    def _idempotency_headers(self, svc: ServiceInfo, handler: str) -> dict[str, str]:
        retention = svc.handlers[handler].options.get("idempotencyRetention") or DEFAULT_IDEMPOTENCY_RETENTION_MS
        expires = datetime.now(UTC) + timedelta(milliseconds=int(retention))
        return {"idempotency-expires": expires.isoformat(timespec="seconds").replace("+00:00", "Z")}

    def _delay(self, request: Request, send: bool, svc: ServiceInfo, is_run: bool) -> int | None:
        delay = request.query.get("delay")
        if delay is None:
            return None
        if not send:
            raise IngressError(400, "delay is only allowed on /send")
        if is_run:
            raise IngressError(400, "delay is not allowed on a workflow's run")
        try:
            return now_ms() + parse_delay_ms(delay)
        except ValueError as e:
            raise IngressError(400, str(e)) from None

    def _route(self, raw_path: str, explicit_send: bool | None) -> tuple[ServiceInfo, str | None, str, bool]:
        """``/{service}/[{key}/]{handler}[/send]``; with ``explicit_send`` (the path came under
        ``/restate/call/`` or ``/restate/send/``) no ``/send`` suffix is looked for."""
        parts = [unquote(p) for p in raw_path.strip("/").split("/")] if raw_path.strip("/") else []
        if not parts:
            raise IngressError(404, "no service in path: expected /{service}/{handler}")
        svc = self.registry.service(parts[0])
        if svc is None:
            raise IngressError(404, f"service '{parts[0]}' not found")
        rest = parts[1:]
        send = explicit_send if explicit_send is not None else \
            len(rest) == (3 if svc.keyed else 2) and rest[-1] == "send"
        if send and explicit_send is None:
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
        target = svc.handlers.get(handler)
        if target is None:
            raise IngressError(404, f"handler '{svc.name}/{handler}' not found")
        if not target.public:  # ingressPrivate in the manifest, or PATCH /services/{s} {"public": false}
            raise IngressError(400, "the invoked service is not public")
        return svc, key, handler, send

    # results ------------------------------------------------------------------------------------
    async def workflow_result(self, request: Request, m: dict[str, str]) -> Response:
        _check_method(request)
        svc = self.registry.service(m["service"])
        if svc is None or svc.ty != "WORKFLOW":
            raise IngressError(404, f"workflow '{m['service']}' not found")
        inv = workflow_run_id(svc.name, m["key"])
        run = next((h for h in svc.handlers.values() if h.ty == "WORKFLOW"), None)
        return await self._get_result(inv, m["mode"], run.output_content_type if run else None)

    async def invocation_result(self, request: Request, m: dict[str, str]) -> Response:
        _check_method(request)
        try:
            inv = InvocationId.parse(m["id"])
        except ValueError as e:
            raise IngressError(400, str(e)) from None
        return await self._get_result(inv, m["mode"], None)

    async def idempotent_result(self, request: Request, m: dict[str, str]) -> Response:
        """Attach to, or read, the invocation an idempotency key names."""
        _check_method(request)
        svc = self.registry.service(m["service"])
        if svc is None or m["handler"] not in svc.handlers:
            raise IngressError(404, f"handler '{m['service']}/{m['handler']}' not found")
        inv = idempotent_invocation_id(svc.name, m.get("key"), m["handler"], m["idem"])
        return await self._get_result(inv, m["mode"], svc.handlers[m["handler"]].output_content_type)

    async def _get_result(self, inv: InvocationId, mode: str, content_type: str | None) -> Response:
        if mode == "attach":  # waits: shared and bounded (ingress/attach.py)
            reply = await self._attached.wait(str(inv), lambda request_id: self._ask(inv, mode, request_id))
        else:  # answered at once
            reply = await self._ask(inv, mode, f"{mode}-{random_hex()}")
        return self._result(content_type, reply)

    async def _ask(self, inv: InvocationId, mode: str, request_id: str) -> dict[str, Any]:
        reply_to = self.log.reply_to(request_id)
        return await self.log.request("Attach", self.log.partition_of(inv), {
            "invocation_id": str(inv), "mode": mode, "reply_to": reply_to}, request_id)

    def _result(self, content_type: str | None, reply: dict[str, Any]) -> Response:
        inv = reply["invocation_id"]
        if reply["failure"] is not None:
            f = reply["failure"]
            resp = error_reply(f["code"], f["message"], source="invocation")
            resp.headers["x-restate-id"] = inv
            return resp
        return Response(200, reply["value"] or b"", {
            "content-type": content_type or "application/json", "x-restate-id": inv})

    # awakeables -------------------------------------------------------------------------------
    async def awakeable(self, request: Request, m: dict[str, str]) -> Response:
        if request.method != "POST":
            raise IngressError(405, f"method {request.method} not allowed: use POST")
        try:
            inv, idx = parse_awakeable_id(m["id"])
        except ValueError as e:
            raise IngressError(400, str(e)) from None
        body = request.body
        if m["action"] == "resolve":
            value, failure = body, None
        else:
            value, failure = None, {"code": 500, "message": body.decode("utf-8", "replace")}
        await self.log.produce("Signal", self.log.partition_of(inv), {
            "invocation_id": str(inv), "idx": idx, "name": None, "value": value, "failure": failure})
        return Response(202)


class Admission:
    """Bounded in-flight requests: past the limit, 429 with Retry-After instead of an unbounded queue.

    A plain context manager: ``contextlib.asynccontextmanager`` (a generator and an awaitable per
    request) was ~2% of the engine's samples under one-way sends (docs/benchmarks.md, "The ingress's
    admission bound")."""

    __slots__ = ("limit", "inflight")

    def __init__(self, limit: int) -> None:
        self.limit, self.inflight = limit, 0

    def __enter__(self) -> None:
        if self.inflight >= self.limit:
            raise IngressError(429, f"overloaded: {self.inflight} requests in flight; retry later",
                               {"retry-after": "1"})
        self.inflight += 1

    def __exit__(self, *_exc: object) -> None:
        self.inflight -= 1


def _call_or_send(path: str) -> tuple[str, bool | None]:
    """Restate's ``/restate/call/{target}`` and ``/restate/send/{target}`` (what a service's OpenAPI
    document names) as the target path and whether it is a send; any other path as it is."""
    if path.startswith("/restate/call/"):
        return path[13:], False
    if path.startswith("/restate/send/"):
        return path[13:], True
    return path, None


def _check_method(request: Request) -> None:
    if request.method not in ("GET", "POST"):
        raise IngressError(405, f"method {request.method} not allowed: use POST (or GET)")


def _json(status: int, body: dict[str, Any], inv: str) -> Response:
    return Response(status, orjson.dumps(body), {"content-type": "application/json", "x-restate-id": inv})
