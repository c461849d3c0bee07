"""StateMutation: an operator replaces a virtual object's (or workflow's) whole state.

Applied only while no exclusive invocation holds the key: a running handler has read the state
already (eagerly, or lazily through the partition) and must not see it change under it, so the
mutation is refused with 409 then (Restate queues it in the key's inbox instead; docs/admin-api.md).
With a ``version`` it is applied only if the key's current state has that version (Restate's
state version, ``engine/state_version.py``), else 409. Applied: 202, as Restate answers.
"""

from __future__ import annotations

from typing import Any

import orjson

from reprise.engine.state_version import state_version
from reprise.partitions.core import lifecycle
from reprise.partitions.core.context import ApplyContext


def apply_state_mutation(ctx: ApplyContext, rec: dict[str, Any], now_ms: int) -> None:
    service, key = rec["service"], rec["key"]
    holder = ctx.tables.objects.lock_holder(service, key)
    if holder is not None:
        code, message = 409, (f"{service}/{key} is held by invocation {holder}: its state can be set once "
                              f"that invocation and those queued behind it ended")
    else:
        current = ctx.tables.state.all(service, key)
        found = state_version(current) if rec["version"] is not None else None
        if found is not None and found != rec["version"]:
            code, message = 409, (f"the state of {service}/{key} has version {found}, "
                                  f"not the expected {rec['version']}")
        else:
            new = {name.encode(): value for name, value in rec["state"].items()}
            for name, _ in current:
                if name not in new:
                    ctx.tables.state.clear(service, key, name)
            for name, value in sorted(new.items()):
                ctx.tables.state.set(service, key, name, value)
            code, message = 202, "state replaced"
    reply = rec["reply_to"]
    if reply is not None:
        if code < 300:
            lifecycle.send_reply(ctx, reply, "", orjson.dumps({"code": code, "message": message}), None)
        else:
            lifecycle.send_reply(ctx, reply, "", None, {"code": code, "message": message})
