"""``POST /services/{service}/state``: replace a virtual object's state, as Restate 1.7's admin API.

The body is Restate's ``ModifyServiceStateRequest``: ``{"object_key": "k", "new_state": {"name":
[bytes as integers]}, "version": optional}``. The change goes through the log like every state change:
a StateMutation record on the key's partition, which applies it at once or, while an exclusive
invocation holds the key, queues it in the key's inbox (``partitions/core/apply/state_mutation.py``),
and answers: 202 applied or queued, 409 not applied (the key's state is not at ``version``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from reprise.engine.partitioning import partition_for_key
from reprise.engine.registry import Registry
from reprise.ingress.errors import IngressError, error_response
from reprise.ingress.log_client import LogClient

MAX_KEY_CHARS = 64 * 1024  # what the log's checks accept for an object key or a state name (validation.py)


class StateRoutes:
    def __init__(self, registry: Registry, log: LogClient) -> None:
        self.registry, self.log = registry, log

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_post("/services/{name}/state", self.modify_state)

    async def modify_state(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        svc = self.registry.service(name)
        if svc is None:
            return error_response(404, f"The requested service '{name}' does not exist")
        if not svc.keyed:
            return error_response(400, f"Cannot modify state for service type {_restate_type(svc.ty)}")
        try:
            record = _record(name, json.loads(await request.read() or b"null"))
        except ValueError as e:
            return error_response(400, f"Failed to deserialize the JSON body into the target type: {e}")
        request_id = f"admin-{uuid.uuid4().hex}"
        record["reply_to"] = self.log.reply_to(request_id)
        try:
            reply = await self.log.request("StateMutation", partition_for_key(record["key"], self.log.partitions),
                                           record, request_id, key=record["key"].encode())
        except IngressError as e:
            return error_response(e.code, e.message)
        if reply["failure"] is not None:
            return error_response(reply["failure"]["code"], reply["failure"]["message"])
        return web.Response(status=202)  # Restate answers without a body


def _record(service: str, body: Any) -> dict[str, Any]:
    """The StateMutation of a request body, or ValueError saying what is wrong with it."""
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object with 'object_key' and 'new_state'")
    key, new_state, version = body.get("object_key"), body.get("new_state"), body.get("version")
    if not isinstance(key, str) or len(key) > MAX_KEY_CHARS:
        raise ValueError(f"object_key: expected a string of at most {MAX_KEY_CHARS} characters")
    if not isinstance(new_state, dict):
        raise ValueError("new_state: expected an object of state names to arrays of bytes")
    if version is not None and not isinstance(version, str):
        raise ValueError("version: expected a string or null")
    if body.get("scope") is not None:
        raise ValueError("scope: scoped virtual object instances are not supported by Reprise")
    state: dict[str, bytes] = {}
    for state_name, value in new_state.items():
        if len(state_name) > MAX_KEY_CHARS:
            raise ValueError(f"new_state: a name of {len(state_name)} characters (at most {MAX_KEY_CHARS})")
        if not isinstance(value, list) or not all(type(b) is int and 0 <= b <= 255 for b in value):
            raise ValueError(f"new_state.{state_name}: expected an array of integers 0..255")
        state[state_name] = bytes(value)
    return {"service": service, "key": key, "version": version, "state": state}


def _restate_type(ty: str) -> str:
    return {"SERVICE": "Service", "VIRTUAL_OBJECT": "VirtualObject", "WORKFLOW": "Workflow"}.get(ty, ty)
