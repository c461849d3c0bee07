"""CallCompleted: a child invocation's result reaches its caller's journal."""

from __future__ import annotations

from typing import Any

from engine.protocol import journal as pj
from partitions import lifecycle
from partitions.context import ApplyContext
from partitions.status import Status


def apply_call_completed(ctx: ApplyContext, rec: dict[str, Any], now_ms: int) -> None:
    src = rec.get("source")
    if src is not None and ctx.tables.seen(src["partition"], src["seq"]):
        ctx.drop(f"CallCompleted from partition {src['partition']} seq {src['seq']} already applied")
        return
    row = ctx.tables.status(rec["invocation_id"])
    if row is None or row["status"] == Status.COMPLETED.value:
        ctx.drop(f"CallCompleted for {rec['invocation_id']}: caller is gone or completed")
        return
    failure = rec["failure"]
    frame = pj.call_completion(rec["completion_id"], rec["value"],
                               (failure["code"], failure["message"]) if failure else None)
    lifecycle.append_entry(ctx, row, frame)
    lifecycle.resume_if_awaited(ctx, row, now_ms)
