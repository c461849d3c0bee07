"""Signal: an awakeable's result, a named signal, or cancel, for one invocation's journal."""

from __future__ import annotations

from typing import Any

from reprise.partitions.core import control, lifecycle
from reprise.partitions.core.context import ApplyContext


def apply_signal(ctx: ApplyContext, rec: dict[str, Any], now_ms: int) -> None:
    if lifecycle.is_duplicate(ctx, rec, "Signal"):
        return
    row = lifecycle.live_invocation(ctx, rec["invocation_id"], "Signal")
    if row is None:
        return
    if rec["idx"] == control.CANCEL_SIGNAL:
        control.cancel(ctx, row, now_ms)
        return
    signal = rec["idx"] if rec["idx"] is not None else rec["name"]
    control.deliver_signal(ctx, row, now_ms, signal, rec["value"], rec["failure"])
