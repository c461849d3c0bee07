"""Attach: someone asks for an invocation's result; 'attach' waits, 'output' answers at once."""

from __future__ import annotations

from typing import Any

from reprise.partitions.core import lifecycle
from reprise.partitions.core.context import ApplyContext
from reprise.partitions.core.status import Status
from reprise.schemas.records import InvocationStatus, ReplyTo

NOT_READY = 470
# Clients (reply targets) one invocation keeps waiting. An ingress shares one per invocation among its
# clients (ingress/attach.py); what grows is idempotent calls repeated while it runs. Past the bound
# the oldest waiter, the likeliest to be gone, is answered 503 and the new one takes its place.
MAX_ATTACHED_REPLIES = 1_000


def apply_attach(ctx: ApplyContext, rec: dict[str, Any], now_ms: int) -> None:
    inv, reply = rec["invocation_id"], rec["reply_to"]
    row = ctx.tables.invocations.get(inv)
    if row is None:
        lifecycle.send_reply(ctx, reply, inv, None, {"code": 404, "message": f"invocation {inv} not found"})
    elif row["status"] == Status.COMPLETED.value:
        lifecycle.send_reply(ctx, reply, inv, row["result_value"], row["result_failure"])
    elif rec["mode"] == "output":
        lifecycle.send_reply(ctx, reply, inv, None, {"code": NOT_READY, "message": f"invocation {inv} not finished"})
    else:
        add_waiter(ctx, row, reply)
        ctx.tables.invocations.put(row)


def add_waiter(ctx: ApplyContext, row: InvocationStatus, reply: ReplyTo) -> None:
    """Someone to answer when the invocation completes; a repeated reply target is kept once."""
    waiting = row["attached_replies"]
    if reply in waiting or reply == row["reply_to"]:
        return
    if len(waiting) >= MAX_ATTACHED_REPLIES:
        inv = row["invocation_id"]
        lifecycle.send_reply(ctx, waiting.pop(0), inv, None, {"code": 503, "message": (
            f"more than {MAX_ATTACHED_REPLIES} clients wait for invocation {inv}: the oldest gave way; attach again")})
    waiting.append(reply)
