"""LeaderEpoch and OutboxShipped: who may act for the partition, and what it has delivered."""

from __future__ import annotations

from typing import Any

from reprise.partitions.core import lifecycle
from reprise.partitions.core.context import ApplyContext


def apply_leader_epoch(ctx: ApplyContext, rec: dict[str, Any], now_ms: int) -> None:
    current = ctx.tables.leadership.epoch()
    if rec["epoch"] <= current:
        ctx.drop(f"LeaderEpoch {rec['epoch']} from {rec['owner']}: expected above {current}")
        return
    ctx.tables.leadership.set(rec["epoch"], rec["owner"])


def apply_outbox_shipped(ctx: ApplyContext, rec: dict[str, Any], now_ms: int) -> None:
    if lifecycle.from_stale_leader(ctx, rec, f"OutboxShipped up to {rec['up_to_seq']}"):
        return
    ctx.tables.outbox.truncate(rec["up_to_seq"])
