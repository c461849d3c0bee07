"""Signal: an awakeable's result, a named signal, or cancel, for one invocation's journal."""

from __future__ import annotations

from typing import Any

from partitions import control
from partitions.context import ApplyContext
from partitions.status import Status


def apply_signal(ctx: ApplyContext, rec: dict[str, Any], now_ms: int) -> None:
    src = rec.get("source")
    if src is not None and ctx.tables.seen(src["partition"], src["seq"]):
        ctx.drop(f"Signal from partition {src['partition']} seq {src['seq']} already applied")
        return
    row = ctx.tables.status(rec["invocation_id"])
    if row is None or row["status"] == Status.COMPLETED.value:
        ctx.drop(f"Signal for {rec['invocation_id']}: invocation is gone or completed")
        return
    if rec["idx"] == control.CANCEL_SIGNAL:
        control.cancel(ctx, row, now_ms)
        return
    control.deliver_signal(ctx, row, now_ms, rec["idx"], rec["name"], rec["value"], rec["failure"])
