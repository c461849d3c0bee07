"""RetentionSweep: forget plain invocations whose completion is older than their retention.

A plain invocation (no idempotency key, not a workflow run) keeps its status, result and journal
after it completes, for attach, output and introspection, for ``REPRISE_COMPLETED_RETENTION_S``.
Completions are indexed by time; the leader appends one RetentionSweep record when some are due,
and apply() removes them here, so a replay forgets exactly what the live partition forgot.
"""

from __future__ import annotations

from typing import Any

from reprise.partitions.core import control, lifecycle
from reprise.partitions.core.context import ApplyContext
from reprise.partitions.core.status import Status


def apply_retention_sweep(ctx: ApplyContext, rec: dict[str, Any], now_ms: int) -> None:
    if lifecycle.from_stale_leader(ctx, rec, f"RetentionSweep before {rec['before_ms']}"):
        return
    for index_key, inv in ctx.tables.completions.before(rec["before_ms"], rec["limit"]):
        row = ctx.tables.invocations.get(inv)
        if row is not None and row["status"] == Status.COMPLETED.value:
            control.forget(ctx, row)  # a purged one is gone already: only its index entry is left
        ctx.tables.completions.unindex(index_key)
