"""AdminCommand: cancel, kill, purge, purge-journal, pause, resume or restart-as-new one invocation,
answering the operator."""

from __future__ import annotations

from typing import Any

import orjson

from reprise.partitions.core import control, lifecycle, restart
from reprise.partitions.core.context import ApplyContext

RESTART = "restart-as-new"
KNOWN = (*control.COMMANDS, RESTART)


def apply_admin_command(ctx: ApplyContext, rec: dict[str, Any], now_ms: int) -> None:
    inv, command = rec["invocation_id"], rec["command"]
    row = ctx.tables.invocations.get(inv)
    answer: dict[str, Any] = {}
    if command not in KNOWN:
        code, message = 400, f"unknown command {command!r}: expected one of {', '.join(KNOWN)}"
    elif row is None:
        code, message = 404, f"The requested invocation '{inv}' does not exist"  # Restate's words
    elif command == RESTART:
        try:  # v1 records have no restart parameters: from 0
            answer["new_invocation_id"] = restart.restart_as_new(ctx, row, now_ms, rec.get("restart_from"),
                                                                 rec.get("restart_deployment"))
            code, message = 200, "restarted as new"
        except restart.Refused as e:
            code, message = e.code, e.message
    else:
        code, message = control.COMMANDS[command](ctx, row, now_ms)
    if rec["reply_to"] is not None:
        if code < 300:
            lifecycle.send_reply(ctx, rec["reply_to"], inv, orjson.dumps({"code": code, "message": message, **answer}),
                                 None)
        else:
            lifecycle.send_reply(ctx, rec["reply_to"], inv, None, {"code": code, "message": message})
