"""AdminCommand: cancel, kill, purge, pause or resume one invocation, answering the operator."""

from __future__ import annotations

from typing import Any

import orjson

from reprise.partitions.core import control, lifecycle
from reprise.partitions.core.context import ApplyContext


def apply_admin_command(ctx: ApplyContext, rec: dict[str, Any], now_ms: int) -> None:
    inv, command = rec["invocation_id"], rec["command"]
    row = ctx.tables.invocations.get(inv)
    if command not in control.COMMANDS:
        code, message = 400, f"unknown command {command!r}: expected one of {', '.join(control.COMMANDS)}"
    elif row is None:
        code, message = 404, f"invocation {inv} not found"
    else:
        code, message = control.COMMANDS[command](ctx, row, now_ms)
    if rec["reply_to"] is not None:
        if code < 300:
            lifecycle.send_reply(ctx, rec["reply_to"], inv, orjson.dumps({"code": code, "message": message}), None)
        else:
            lifecycle.send_reply(ctx, rec["reply_to"], inv, None, {"code": code, "message": message})
