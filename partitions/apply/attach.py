"""Attach: someone asks for an invocation's result; 'attach' waits, 'output' answers at once."""

from __future__ import annotations

from typing import Any

from partitions import lifecycle
from partitions.context import ApplyContext
from partitions.status import Status

NOT_READY = 470


def apply_attach(ctx: ApplyContext, rec: dict[str, Any], now_ms: int) -> None:
    inv, reply = rec["invocation_id"], rec["reply_to"]
    row = ctx.tables.status(inv)
    if row is None:
        lifecycle.send_reply(ctx, reply, inv, None, {"code": 404, "message": f"invocation {inv} not found"})
    elif row["status"] == Status.COMPLETED.value:
        lifecycle.send_reply(ctx, reply, inv, row["result_value"], row["result_failure"])
    elif rec["mode"] == "output":
        lifecycle.send_reply(ctx, reply, inv, None, {"code": NOT_READY, "message": f"invocation {inv} not finished"})
    else:
        if reply not in row["attached_replies"]:
            row["attached_replies"].append(reply)
        ctx.tables.put_status(row)
