"""TimerFired: a durable timer came due. A timer fires once: after that its row is gone."""

from __future__ import annotations

from typing import Any

from reprise.engine.protocol import journal as pj
from reprise.partitions.core import control, lifecycle
from reprise.partitions.core.apply import schedule
from reprise.partitions.core.context import ApplyContext
from reprise.partitions.core.status import Status


def apply_timer_fired(ctx: ApplyContext, rec: dict[str, Any], now_ms: int) -> None:
    key = rec["timer_key"]
    if lifecycle.from_stale_leader(ctx, rec, f"timer {key}"):
        return
    timer = ctx.tables.timers.get(key)
    if timer is None:
        ctx.drop(f"timer {key}: expected a pending timer, found none (already fired)")
        return
    ctx.tables.timers.delete(key)
    if timer["kind"] == schedule.TIMER_KIND:
        schedule.fire(ctx, key, timer["invocation_id"], now_ms)
        return
    row = ctx.tables.invocations.get(timer["invocation_id"])
    if timer["kind"] == "cleanup" and row is not None and row["status"] == Status.COMPLETED.value:
        control.forget(ctx, row)
        return
    if timer["kind"] == lifecycle.JOURNAL_TIMER and row is not None and row["status"] == Status.COMPLETED.value:
        lifecycle.drop_journal(ctx, row)  # its journal retention ran out: the status stays
        ctx.tables.invocations.put(row)
        return
    if row is None or row["status"] == Status.COMPLETED.value:
        ctx.drop(f"timer {key}: invocation {timer['invocation_id']} is gone or completed")
        return
    kind = timer["kind"]
    if kind == "sleep":
        lifecycle.append_entry(ctx, row, pj.sleep_completion(timer["completion_id"]))
        lifecycle.resume_if_awaited(ctx, row, now_ms)
    elif kind == "retry" and row["status"] == Status.BACKING_OFF.value:
        lifecycle.start_attempt(ctx, row, now_ms)
    elif kind == "invoke" and row["status"] == Status.SCHEDULED.value:
        lifecycle.admit(ctx, row, now_ms)
    else:
        ctx.drop(f"timer {key}: a {kind} timer does not apply to a {row['status']} invocation")
