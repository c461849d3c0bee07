"""The admin API's durable cron schedules (docs/schedules.md).

``POST /schedules`` checks the request (cron expression, time zone, target against the registry,
body size) and writes a ScheduleCommand to the partition of the schedule's id; the partition
answers once it applied it. ``GET /schedules[/{id}]`` read the partitions this process holds and add
what needs a clock: the next fire times, and the outcome of the last fire's invocation.
``PATCH /schedules/{id}/pause|resume`` and ``DELETE /schedules/{id}`` go through the log like create.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from reprise.engine import schedules as spec
from reprise.engine.introspection import Introspector
from reprise.engine.registry import Registry
from reprise.ingress.errors import IngressError, error_response
from reprise.ingress.log_client import LogClient
from reprise.ingress.request_io import in_thread

NEXT_TICKS_SHOWN = 5


class ScheduleRoutes:
    def __init__(self, registry: Registry, log: LogClient, introspector: Callable[[], Introspector]) -> None:
        self.registry = registry
        self.log = log
        self.introspector = introspector  # raises 501 in a process that holds no partitions

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_post("/schedules", self.create)
        router.add_get("/schedules", self.list)
        router.add_get("/schedules/{id}", self.describe)
        router.add_patch("/schedules/{id}/{op:pause|resume}", self.command)
        router.add_delete("/schedules/{id}", self.command)

    async def create(self, request: web.Request) -> web.Response:
        try:
            body: Any = json.loads(await request.read() or b"null")
        except ValueError:
            return error_response(400, "body is not JSON: expected {\"cron\": ..., \"target\": ...}")
        if not isinstance(body, dict):
            return error_response(400, "expected a JSON object with 'cron' and 'target'")
        try:
            record = self._create_record(body)
        except spec.ScheduleError as e:
            return error_response(400, str(e))
        return await self._send(record, created=True)

    def _create_record(self, body: dict[str, Any]) -> dict[str, Any]:
        cron, target_text = body.get("cron"), body.get("target")
        if not isinstance(cron, str) or not isinstance(target_text, str):
            raise spec.ScheduleError("expected a string 'cron' and a string 'target' (Service/handler, "
                                     "Object/key/handler or Workflow/id/run)")
        sid = body.get("id") or f"sch_{uuid.uuid4().hex[:20]}"
        tz = body.get("timezone", "UTC")
        catch_up = body.get("catch_up", "once")
        if not isinstance(sid, str) or not isinstance(tz, str) or catch_up not in spec.CATCH_UP:
            raise spec.ScheduleError("'id' and 'timezone' are strings; 'catch_up' is skip, once or all")
        spec.check_id(sid)
        spec.zone(tz)
        spec.check_cron(cron, tz, int(time.time() * 1000))
        target = spec.parse_target(target_text)
        kind = self._handler_kind(target)
        payload = body.get("body")
        data = orjson.dumps(payload) if "body" in body else b""
        if len(data) > spec.MAX_BODY_BYTES:
            raise spec.ScheduleError(f"body: at most {spec.MAX_BODY_BYTES} bytes, found {len(data)}")
        return {"schedule_id": sid, "op": "create", "cron": cron, "timezone": tz, "catch_up": catch_up,
                "service": target.service, "handler": target.handler, "key": target.key, "handler_kind": kind,
                "input": data}

    def _handler_kind(self, target: spec.Target) -> str | None:
        """The handler's kind from the registry; the key must be there exactly when the service is keyed."""
        svc = self.registry.service(target.service)
        if svc is None or target.handler not in svc.handlers:
            raise spec.ScheduleError(f"target {target}: no handler '{target.service}/{target.handler}' is registered")
        if svc.keyed != (target.key is not None):
            form = "Object/key/handler or Workflow/id/run" if svc.keyed else "Service/handler"
            raise spec.ScheduleError(f"target {target}: '{target.service}' is a {svc.ty.lower()}: expected {form}")
        if target.key is not None and len(target.key) > 64 * 1024:
            raise spec.ScheduleError("target: the key is longer than 64 KiB")
        return svc.handlers[target.handler].ty

    async def command(self, request: web.Request) -> web.Response:
        sid = request.match_info["id"]
        try:
            spec.check_id(sid)
        except spec.ScheduleError as e:
            return error_response(400, str(e))
        op = request.match_info.get("op", "delete")
        return await self._send({"schedule_id": sid, "op": op, "cron": None, "timezone": "UTC", "catch_up": "once",
                                 "service": None, "handler": None, "key": None, "handler_kind": None,
                                 "input": b""}, created=False)

    async def _send(self, record: dict[str, Any], created: bool) -> web.Response:
        sid = record["schedule_id"]
        request_id = f"admin-{uuid.uuid4().hex}"
        try:
            reply = await self.log.request("ScheduleCommand", spec.owner_partition(sid, self.log.partitions),
                                           {**record, "reply_to": self.log.reply_to(request_id)}, request_id,
                                           key=sid.encode())
        except IngressError as e:
            return error_response(e.code, e.message)
        if reply["failure"] is not None:
            return error_response(reply["failure"]["code"], reply["failure"]["message"])
        answer = orjson.loads(reply["value"])
        if isinstance(answer["schedule"], dict):
            return web.json_response(_with_next_ticks(answer["schedule"]), status=answer["code"])
        return web.json_response({"id": sid, "message": answer["schedule"]}, status=answer["code"])

    async def list(self, _r: web.Request) -> web.Response:
        rows = await in_thread(self.introspector().schedules)
        return web.json_response({"schedules": [_with_next_ticks(r, 1) for r in rows]})

    async def describe(self, request: web.Request) -> web.Response:
        sid = request.match_info["id"]
        introspector = self.introspector()
        rows = await in_thread(introspector.schedules)
        found = next((r for r in rows if r["id"] == sid), None)
        if found is None:
            return error_response(404, f"schedule {sid} not found")
        out = _with_next_ticks(found)
        out["last_outcome"] = None
        if found["last_invocation_id"]:
            inv = await in_thread(introspector.describe, found["last_invocation_id"])
            if inv is not None:
                out["last_outcome"] = {"invocation_id": inv["id"], "status": inv["status"],
                                       "failure": inv["last_failure"], "output": inv["output"]}
        return web.json_response(out)


def _with_next_ticks(row: dict[str, Any], n: int = NEXT_TICKS_SHOWN) -> dict[str, Any]:
    """The schedule with its next fire times (none while paused), from the wall clock now."""
    ticks = [] if row["paused"] else spec.ticks_after(row["cron"], row["timezone"], int(time.time() * 1000) - 1, n)
    if not row["paused"] and row["next_tick_ms"] is not None and (not ticks or row["next_tick_ms"] < ticks[0]):
        ticks = [row["next_tick_ms"], *ticks][:n]  # due and not fired yet (the engine is catching up)
    return {**row, "next_fire_times": [spec.iso(t) for t in ticks]}
