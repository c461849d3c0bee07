"""CallCompleted: a child invocation's result reaches its caller's journal."""

from __future__ import annotations

from typing import Any

from reprise.engine.protocol import journal as pj
from reprise.partitions.core import lifecycle
from reprise.partitions.core.context import ApplyContext
from reprise.partitions.core.errors import RejectedRecord, Rejection


def apply_call_completed(ctx: ApplyContext, rec: dict[str, Any], now_ms: int) -> None:
    if lifecycle.is_duplicate(ctx, rec, "CallCompleted"):
        return
    row = lifecycle.live_invocation(ctx, rec["invocation_id"], "CallCompleted")
    if row is None:
        return
    if rec["completion_id"] in row["completed_ids"]:  # a second result for one call: a replay would diverge
        raise RejectedRecord(f"CallCompleted for {rec['invocation_id']}: expected completion {rec['completion_id']} "
                             f"pending, found it completed in the journal", Rejection.INCONSISTENT)
    failure = rec["failure"]
    frame = pj.call_completion(rec["completion_id"], rec["value"],
                               (failure["code"], failure["message"]) if failure else None)
    lifecycle.append_entry(ctx, row, frame)
    lifecycle.resume_if_awaited(ctx, row, now_ms)
