"""ScheduleCommand and a schedule's ticks: durable cron schedules.

A schedule is a row of the partition that owns its id (``sc/``) plus one durable timer for its next
tick. When that timer fires, the same step starts the tick's invocation (an Invoke through the
outbox, with an idempotency key made of the schedule id and the tick) and sets the timer of the
next tick. Every time comes from records: a command's time is its record's, a tick's fire time is
the TimerFired record's, so a replay computes the same ticks. A timer fires once (its row is
deleted by the step that acts on it), the outbox ships exactly once, and the tick's idempotency key
names one invocation even if a tick were ever fired twice.

When a tick fires late (the engine was down), the ticks missed meanwhile are handled by the
schedule's catch-up policy: ``skip`` fires the newest of them only if it is less than a minute
late, ``once`` fires the newest, ``all`` fires each of them (the newest ``MAX_CATCH_UP_TICKS``).
"""

from __future__ import annotations

from typing import Any

import orjson

from reprise.engine import schedules as spec
from reprise.engine.ids import idempotent_invocation_id, workflow_run_id
from reprise.partitions.core import lifecycle
from reprise.partitions.core.actions import ScheduleTimer
from reprise.partitions.core.context import ApplyContext
from reprise.schemas.invoke import new_invoke

Row = dict[str, Any]
TIMER_KIND = "schedule"


# commands ------------------------------------------------------------------------------------------
def apply_schedule_command(ctx: ApplyContext, rec: dict[str, Any], now_ms: int) -> None:
    sid, op = rec["schedule_id"], rec["op"]
    row = ctx.tables.schedules.get(sid)
    if op == "create":
        code, answer = _create(ctx, rec, row, now_ms)
    elif row is None:
        code, answer = 404, f"schedule {sid} not found"
    elif op == "delete":
        _cancel_timer(ctx, row)
        ctx.tables.schedules.delete(sid)
        code, answer = 200, f"schedule {sid} deleted"
    elif op == "pause":
        if not row["paused"]:
            _cancel_timer(ctx, row)
            row["paused"] = True
            ctx.tables.schedules.put(row)
        code, answer = 200, describe(row)
    else:  # resume (validation refused any other op)
        if row["paused"]:
            row["paused"] = False
            _arm(ctx, row, spec.next_tick(row["cron"], row["timezone"], now_ms))
            ctx.tables.schedules.put(row)
        code, answer = 200, describe(row)
    _answer(ctx, rec, code, answer)


def _create(ctx: ApplyContext, rec: dict[str, Any], row: Row | None, now_ms: int) -> tuple[int, Any]:
    wanted = {f: rec[f] for f in _SPEC_FIELDS}
    if row is not None:
        if {f: row[f] for f in _SPEC_FIELDS} == wanted:
            return 200, describe(row)  # the same create again (a retried request): nothing changes
        return 409, f"schedule {rec['schedule_id']} exists with a different definition: delete it first"
    row = {**wanted, "schedule_id": rec["schedule_id"], "paused": False, "created_ms": now_ms,
           "next_tick_ms": None, "timer_key": None, "fired": 0, "skipped": 0, "last_tick_ms": None,
           "last_fired_ms": None, "last_invocation_id": None}
    _arm(ctx, row, spec.next_tick(rec["cron"], rec["timezone"], now_ms))
    ctx.tables.schedules.put(row)
    return 201, describe(row)


_SPEC_FIELDS = ("cron", "timezone", "catch_up", "service", "handler", "key", "handler_kind", "input")


def _answer(ctx: ApplyContext, rec: dict[str, Any], code: int, answer: Any) -> None:
    reply = rec["reply_to"]
    if reply is None:
        if code >= 300:
            ctx.drop(f"ScheduleCommand {rec['op']} {rec['schedule_id']}: {answer}")
        return
    if code < 300:
        lifecycle.send_reply(ctx, reply, "", orjson.dumps({"code": code, "schedule": answer}), None)
    else:
        lifecycle.send_reply(ctx, reply, "", None, {"code": code, "message": answer})


def describe(row: Row) -> dict[str, Any]:
    """A schedule as the admin API shows it (the body as text where it is UTF-8)."""
    target = spec.Target(row["service"], row["key"], row["handler"])
    try:
        body: str | None = row["input"].decode()
    except UnicodeDecodeError:
        body = None
    return {"id": row["schedule_id"], "cron": row["cron"], "timezone": row["timezone"],
            "catch_up": row["catch_up"], "target": str(target), "body": body, "paused": row["paused"],
            "created_at_ms": row["created_ms"], "next_tick_ms": row["next_tick_ms"], "fired": row["fired"],
            "skipped": row["skipped"], "last_tick_ms": row["last_tick_ms"], "last_fired_at_ms": row["last_fired_ms"],
            "last_invocation_id": row["last_invocation_id"]}


# timers --------------------------------------------------------------------------------------------
def _arm(ctx: ApplyContext, row: Row, tick_ms: int | None) -> None:
    """Set the timer of the schedule's next tick (none: the expression has no tick within a year)."""
    row["next_tick_ms"] = tick_ms
    row["timer_key"] = None
    if tick_ms is None:
        return
    key = ctx.tables.timer_key(tick_ms, f"{TIMER_KIND}/{row['schedule_id']}")
    ctx.tables.timers.put(key, {"kind": TIMER_KIND, "invocation_id": row["schedule_id"], "fire_at_ms": tick_ms,
                                "completion_id": 0})
    ctx.actions.append(ScheduleTimer(key, tick_ms))
    row["timer_key"] = key


def _cancel_timer(ctx: ApplyContext, row: Row) -> None:
    if row["timer_key"] is not None:
        ctx.tables.timers.delete(row["timer_key"])
    row["timer_key"], row["next_tick_ms"] = None, None


def fire(ctx: ApplyContext, timer_key: str, schedule_id: str, now_ms: int) -> None:
    """The timer of a schedule's tick came due (its row is deleted already): fire what the catch-up
    policy says and set the timer of the first tick after now."""
    row = ctx.tables.schedules.get(schedule_id)
    if row is None or row["timer_key"] != timer_key:
        ctx.drop(f"timer {timer_key}: schedule {schedule_id} is gone or no longer waits for it")
        return
    tick = row["next_tick_ms"]
    now = max(now_ms, tick)  # a leader's clock ahead of this record's: the tick is due all the same
    due, truncated = spec.due_ticks(row["cron"], row["timezone"], tick, now, spec.MAX_CATCH_UP_TICKS)
    policy = row["catch_up"]
    if policy == "all":
        fired = due
    elif policy == "once" or now - due[-1] <= spec.SKIP_GRACE_MS:
        fired = due[-1:]
    else:  # skip, and even the newest due tick is more than the grace late
        fired = []
    for t in fired:
        row["last_invocation_id"] = _invoke(ctx, row, t, now_ms)
        row["last_tick_ms"], row["last_fired_ms"] = t, now_ms
    row["fired"] += len(fired)
    row["skipped"] += len(due) - len(fired) + (1 if truncated else 0)
    _arm(ctx, row, spec.next_tick(row["cron"], row["timezone"], now))
    ctx.tables.schedules.put(row)


def _invoke(ctx: ApplyContext, row: Row, tick_ms: int, now_ms: int) -> str:
    """The tick's invocation, on its target's partition: a workflow's run is named by its id (it
    runs once per id), anything else by the tick's idempotency key."""
    service, key, handler = row["service"], row["key"], row["handler"]
    idem: str | None = spec.tick_idempotency_key(row["schedule_id"], tick_ms)
    if row["handler_kind"] == "WORKFLOW":
        inv, idem = workflow_run_id(service, key), None
    else:
        inv = idempotent_invocation_id(service, key, handler, idem)  # type: ignore[arg-type]
    headers = [{"name": "x-reprise-schedule-id", "value": row["schedule_id"]},
               {"name": "x-reprise-schedule-tick", "value": spec.iso(tick_ms)}]
    lifecycle.outbox(ctx, "log", inv.partition(ctx.partitions), "Invoke", new_invoke(
        invocation_id=str(inv), service=service, handler=handler, key=key, handler_kind=row["handler_kind"],
        input=row["input"], headers=headers, idempotency_key=idem, created_ms=now_ms))  # type: ignore[arg-type]
    return str(inv)
