"""StateMutation: an operator replaces a virtual object's (or workflow's) whole state.

While no exclusive invocation holds the key it is applied at once: 202, or 409 if a ``version`` is
given and the key's state is not at it (Restate's state version, ``engine/state_version.py``). While
one holds it, the mutation waits in the key's inbox like an invocation and is applied when its turn
comes (``partitions/core/state_mutations.py``), as Restate does: 202 now, as Restate answers.
"""

from __future__ import annotations

from typing import Any

import orjson

from reprise.partitions.core import lifecycle, state_mutations
from reprise.partitions.core.context import ApplyContext


def apply_state_mutation(ctx: ApplyContext, rec: dict[str, Any], now_ms: int) -> None:
    service, key = rec["service"], rec["key"]
    holder = ctx.tables.objects.lock_holder(service, key)
    if holder is not None:
        state_mutations.enqueue(ctx.tables, rec)
        code, message = 202, f"queued behind invocation {holder}, which holds {service}/{key}"
    else:
        code, message = state_mutations.replace_state(ctx.tables, service, key, rec["version"], rec["state"])
    reply = rec["reply_to"]
    if reply is not None:
        if code < 300:
            lifecycle.send_reply(ctx, reply, "", orjson.dumps({"code": code, "message": message}), None)
        else:
            lifecycle.send_reply(ctx, reply, "", None, {"code": code, "message": message})
