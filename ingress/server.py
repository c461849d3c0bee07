"""The HTTP ingress, following Restate's API: call, send, health.

``POST /{Service}/{handler}``, ``/{Object}/{key}/{handler}``, ``/{Workflow}/{id}/{handler}``, each
with an optional ``/send`` suffix. A call waits for the result; a send answers 202 once Kafka has
acknowledged the Invoke record (acks=all). Errors are ``{"code": N, "message": "..."}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web
from confluent_kafka import KafkaError, Message, Producer

from engine.config import Config
from engine.ids import InvocationId, random_routing_key
from engine.kafka import ProducerPoller, log_partitions, produce_record, producer_config
from engine.registry import Registry, ServiceInfo
from ingress.delay import parse_delay_ms
from ingress.errors import IngressError, error_response
from ingress.replies import ReplyListener

log = logging.getLogger(__name__)
# Hop-by-hop and ingress-only headers are not handed to the handler (as in Restate).
_DROP_HEADERS = {"connection", "host", "content-length", "transfer-encoding", "keep-alive",
                 "idempotency-key", "idempotency-expires", "upgrade", "te"}


class Ingress:
    def __init__(self, cfg: Config, registry: Registry) -> None:
        self.cfg = cfg
        self.registry = registry
        self.ingress_id = f"ingress-{uuid.uuid4().hex[:12]}"
        self.replies = ReplyListener(cfg, self.ingress_id)
        self.partitions = log_partitions(cfg)
        self.producer: Producer | None = None
        self._poller: ProducerPoller | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.cfg.max_message_bytes, middlewares=[self._errors])
        app.router.add_get("/restate/health", self.health)
        app.router.add_route("*", "/{path:.*}", self.invoke)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, _app: web.Application) -> None:
        self.producer = Producer(producer_config(self.cfg))
        self._poller = ProducerPoller(self.producer)
        self.replies.start()

    async def _on_cleanup(self, _app: web.Application) -> None:
        self.replies.stop()
        if self._poller:
            self._poller.close()

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except IngressError as e:
            return error_response(e.code, e.message)
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, f"request body exceeds the maximum of {self.cfg.max_message_bytes} bytes")

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({})

    async def invoke(self, request: web.Request) -> web.Response:
        if request.method not in ("GET", "POST"):
            raise IngressError(405, f"method {request.method} not allowed: use POST (or GET)")
        svc, key, handler, send = self._route(request.rel_url.raw_path)
        body = await request.read()
        if body and "json" in request.headers.get("content-type", ""):
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError as e:
                raise IngressError(400, f"malformed JSON body: {e}") from None
        headers = [{"name": k.lower(), "value": v} for k, v in request.headers.items()
                   if k.lower() not in _DROP_HEADERS]
        execute_at = None
        if "delay" in request.query:
            if not send:
                raise IngressError(400, "delay is only allowed on /send")
            try:
                execute_at = int(time.time() * 1000) + parse_delay_ms(request.query["delay"])
            except ValueError as e:
                raise IngressError(400, str(e)) from None
        inv = InvocationId.new(key if key is not None else random_routing_key())
        record = {
            "invocation_id": str(inv), "service": svc.name, "handler": handler, "key": key,
            "handler_kind": svc.handlers[handler].ty, "input": body, "headers": headers,
            "idempotency_key": None, "caller": None, "execute_at_ms": execute_at,
            "created_ms": int(time.time() * 1000),
            "reply_to": None if send else {"topic": "replies", "ingress_id": self.ingress_id,
                                           "request_id": str(inv)},
        }
        if send:
            await self._produce(inv, record)
            out = {"invocationId": str(inv), "status": "Accepted"}
            return web.Response(status=202, body=orjson.dumps(out), content_type="application/json",
                                headers={"x-restate-id": str(inv)})
        fut = self.replies.wait_for(str(inv))
        try:
            await self._produce(inv, record)
            reply = await fut
        finally:
            self.replies.forget(str(inv), fut)
        return self._result(svc, handler, reply)

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
            if len(rest) != 2:
                raise IngressError(400, f"bad path for {svc.ty.lower()} '{svc.name}': expected "
                                        f"/{svc.name}/{{key}}/{{handler}}[/send]")
            key, handler = rest
        else:
            if len(rest) != 1:
                raise IngressError(400, f"bad path for service '{svc.name}': expected /{svc.name}/{{handler}}[/send]")
            key, handler = None, rest[0]
        if handler not in svc.handlers:
            raise IngressError(404, f"handler '{svc.name}/{handler}' not found")
        return svc, key, handler, send

    async def _produce(self, inv: InvocationId, record: dict[str, Any]) -> None:
        """Produce the Invoke and wait until Kafka acknowledged it."""
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[None] = loop.create_future()

        def settle(err: KafkaError | None) -> None:
            if acked.done():
                return
            if err is None:
                acked.set_result(None)
            else:
                acked.set_exception(IngressError(503, f"log unavailable: {err.str()}"))

        def delivered(err: KafkaError | None, _msg: Message) -> None:  # on the poller's thread
            loop.call_soon_threadsafe(settle, err)

        try:
            produce_record(self.producer, self.cfg.log_topic, inv.partition(self.partitions), "Invoke", record,
                           key=(record["key"] or "").encode() or None, on_delivery=delivered)
        except Exception as e:  # noqa: BLE001 - any producer failure is a 503 to the client
            raise IngressError(503, f"cannot write to the log: {e}") from None
        await acked

    def _result(self, svc: ServiceInfo, handler: str, reply: dict[str, Any]) -> web.Response:
        inv = reply["invocation_id"]
        if reply["failure"] is not None:
            f = reply["failure"]
            resp = error_response(f["code"], f["message"], source="invocation")
            resp.headers["x-restate-id"] = inv
            return resp
        ctype = svc.handlers[handler].output_content_type or "application/json"
        return web.Response(status=200, body=reply["value"] or b"", headers={
            "content-type": ctype, "x-restate-id": inv})
