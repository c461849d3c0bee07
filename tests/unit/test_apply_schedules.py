"""Durable cron schedules in apply(): commands, ticks fired by timers, catch-up, hostile records."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from reprise.engine import schedules as spec
from reprise.partitions.core.actions import ScheduleTimer
from reprise.partitions.core.apply import schedule
from tests.unit.apply_helpers import N, Partition, new_partition, outbox_records

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
REPLY = {"topic": "replies", "ingress_id": "admin", "request_id": "r1"}


def sid_here(prefix: str = "s", partition: int = 0) -> str:
    for i in range(1000):
        if spec.owner_partition(f"{prefix}{i}", N) == partition:
            return f"{prefix}{i}"
    raise AssertionError


def command(op: str, sid: str, **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"schedule_id": sid, "op": op, "reply_to": REPLY, "cron": None, "timezone": "UTC",
                           "catch_up": "once", "service": None, "handler": None, "key": None,
                           "handler_kind": None, "input": b""}
    if op == "create":
        rec.update({"cron": "*/2 * * * * *", "catch_up": "all", "service": "Svc", "handler": "h",
                    "input": b'"tick"'})
    rec.update(extra)
    return rec


def create(p: Partition, sid: str, ts: int = T0 + 500, **extra: Any) -> list[Any]:
    return p.feed("ScheduleCommand", command("create", sid, **extra), ts)


def replies(p: Partition) -> list[dict[str, Any]]:
    return [r for k, r in outbox_records(p) if k == "Reply"]


def invokes(p: Partition) -> list[dict[str, Any]]:
    return [r for k, r in outbox_records(p) if k == "Invoke"]


def fire_timer(p: Partition, ts: int) -> list[Any]:
    [(key, _)] = [(k, t) for k, t in p.tables.timers.all() if t["kind"] == "schedule"]
    return p.feed("TimerFired", {"timer_key": key, "epoch": 1, "timestamp_ms": ts}, ts)


def test_create_stores_the_schedule_and_sets_the_timer_of_its_first_tick() -> None:
    p, sid = new_partition(), sid_here()
    actions = create(p, sid)
    row = p.tables.schedules.get(sid)
    assert row is not None and row["next_tick_ms"] == T0 + 2_000 and not row["paused"]
    assert [a for a in actions if isinstance(a, ScheduleTimer)] == [ScheduleTimer(row["timer_key"], T0 + 2_000)]
    answer = orjson.loads(replies(p)[-1]["value"])
    assert answer["code"] == 201 and answer["schedule"]["target"] == "Svc/h"


def test_a_tick_starts_one_invocation_with_the_ticks_idempotency_key_and_arms_the_next() -> None:
    p, sid = new_partition(), sid_here()
    create(p, sid)
    actions = fire_timer(p, T0 + 2_003)
    [inv] = invokes(p)
    assert inv["idempotency_key"] == spec.tick_idempotency_key(sid, T0 + 2_000)
    assert inv["service"] == "Svc" and inv["handler"] == "h" and inv["input"] == b'"tick"'
    assert {"name": "x-reprise-schedule-id", "value": sid} in inv["headers"]
    row = p.tables.schedules.get(sid)
    assert row["next_tick_ms"] == T0 + 4_000 and row["fired"] == 1 and row["last_invocation_id"] == inv["invocation_id"]
    assert [a.fire_at_ms for a in actions if isinstance(a, ScheduleTimer)] == [T0 + 4_000]
    assert [k for k, t in p.tables.timers.all()] == [row["timer_key"]]  # the fired one is gone


def test_the_same_timer_fired_twice_starts_one_invocation() -> None:
    p, sid = new_partition(), sid_here()
    create(p, sid)
    [(key, _)] = list(p.tables.timers.all())
    for _ in range(2):
        p.feed("TimerFired", {"timer_key": key, "epoch": 1, "timestamp_ms": T0 + 2_001}, T0 + 2_001)
    assert len(invokes(p)) == 1


@pytest.mark.parametrize(("policy", "expected_ticks"), [
    ("all", [T0 + 2_000 * i for i in range(1, 6)]),  # every tick of the downtime
    ("once", [T0 + 10_000]),  # one fire, the newest missed tick
    ("skip", [T0 + 10_000]),  # the newest, only because it is within the grace
])
def test_catch_up_after_downtime(policy: str, expected_ticks: list[int]) -> None:
    p, sid = new_partition(), sid_here()
    create(p, sid, catch_up=policy)
    fire_timer(p, T0 + 10_500)  # down from before the first tick (T0+2s) until T0+10.5s
    ticks = [int(i["idempotency_key"].rsplit("/", 1)[1]) for i in invokes(p)]
    assert ticks == expected_ticks
    row = p.tables.schedules.get(sid)
    assert row["next_tick_ms"] == T0 + 12_000
    assert row["fired"] + row["skipped"] == 5


def test_skip_fires_nothing_when_even_the_newest_missed_tick_is_past_the_grace() -> None:
    p, sid = new_partition(), sid_here()
    create(p, sid, cron="0 0 * * * *", catch_up="skip")  # hourly
    fire_timer(p, T0 + 3_600_000 + spec.SKIP_GRACE_MS + 1_000)
    assert invokes(p) == []
    row = p.tables.schedules.get(sid)
    assert row["skipped"] == 1 and row["next_tick_ms"] == T0 + 7_200_000


def test_all_is_bounded_to_the_newest_ticks() -> None:
    p, sid = new_partition(), sid_here()
    create(p, sid)
    fire_timer(p, T0 + 2_000 * (spec.MAX_CATCH_UP_TICKS + 50) + 1)
    ticks = [int(i["idempotency_key"].rsplit("/", 1)[1]) for i in invokes(p)]
    assert len(ticks) == spec.MAX_CATCH_UP_TICKS and len(set(ticks)) == len(ticks)
    assert ticks[-1] == T0 + 2_000 * (spec.MAX_CATCH_UP_TICKS + 50)


def test_pause_stops_ticks_and_resume_arms_the_next_tick_after_its_own_time() -> None:
    p, sid = new_partition(), sid_here()
    create(p, sid)
    [(old_key, _)] = list(p.tables.timers.all())
    p.feed("ScheduleCommand", command("pause", sid), T0 + 1_000)
    assert list(p.tables.timers.all()) == [] and p.tables.schedules.get(sid)["paused"]
    p.feed("TimerFired", {"timer_key": old_key, "epoch": 1, "timestamp_ms": T0 + 2_000}, T0 + 2_000)
    assert invokes(p) == []
    p.feed("ScheduleCommand", command("resume", sid), T0 + 7_000)
    assert p.tables.schedules.get(sid)["next_tick_ms"] == T0 + 8_000
    fire_timer(p, T0 + 8_000)
    assert len(invokes(p)) == 1


def test_delete_removes_the_row_and_its_timer_and_a_late_timer_does_nothing() -> None:
    p, sid = new_partition(), sid_here()
    create(p, sid)
    [(key, _)] = list(p.tables.timers.all())
    p.feed("ScheduleCommand", command("delete", sid), T0 + 1_000)
    assert p.tables.schedules.get(sid) is None and list(p.tables.timers.all()) == []
    p.feed("ScheduleCommand", command("delete", sid), T0 + 1_100)
    assert replies(p)[-1]["failure"]["code"] == 404
    p.feed("TimerFired", {"timer_key": key, "epoch": 1, "timestamp_ms": T0 + 2_000}, T0 + 2_000)
    assert invokes(p) == []


def test_create_again_is_idempotent_and_a_different_definition_conflicts() -> None:
    p, sid = new_partition(), sid_here()
    create(p, sid)
    create(p, sid, ts=T0 + 900)
    assert orjson.loads(replies(p)[-1]["value"])["code"] == 200
    create(p, sid, ts=T0 + 950, cron="0 * * * *")
    assert replies(p)[-1]["failure"]["code"] == 409
    assert len([k for k, _ in p.tables.timers.all()]) == 1


def test_workflow_target_names_the_run_by_the_workflow_id() -> None:
    p, sid = new_partition(), sid_here()
    create(p, sid, service="Wf", handler="run", key="daily", handler_kind="WORKFLOW")
    fire_timer(p, T0 + 2_000)
    [inv] = invokes(p)
    assert inv["idempotency_key"] is None and inv["key"] == "daily" and inv["handler_kind"] == "WORKFLOW"


def test_rebuild_by_replay_gives_the_same_store() -> None:
    """Replaying the same records into a fresh store gives the same bytes (no clock inside)."""
    def run() -> dict[bytes, bytes]:
        p, sid = new_partition(), sid_here()
        create(p, sid, catch_up="once")
        fire_timer(p, T0 + 9_100)
        p.feed("ScheduleCommand", command("pause", sid), T0 + 9_200)
        p.feed("ScheduleCommand", command("resume", sid), T0 + 20_000)
        return dict(p.store.data)
    assert run() == run()


HOSTILE = [
    ("bad cron", {"cron": "61 * * * *"}),
    ("cron of seven fields", {"cron": "* * * * * * *"}),
    ("never fires", {"cron": "0 0 30 2 *"}),
    ("unknown zone", {"timezone": "Mars/Olympus"}),
    ("path as zone", {"timezone": "../../etc/passwd"}),
    ("unknown catch-up", {"catch_up": "sometimes"}),
    ("unknown handler kind", {"handler_kind": "ROOT"}),
    ("no service", {"service": ""}),
    ("huge body", {"input": b"x" * (spec.MAX_BODY_BYTES + 1)}),
    ("keyed without key", {"handler_kind": "EXCLUSIVE", "key": None}),
    ("no cron", {"cron": None}),
]


@pytest.mark.parametrize(("what", "change"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_forged_creates_are_rejected_before_they_touch_state(what: str, change: dict[str, Any]) -> None:
    p, sid = new_partition(), sid_here()
    before = dict(p.store.data)
    rejected = _feed_rejected(p, command("create", sid, **change))
    assert rejected, what
    assert rejected[0].reason != "failed", rejected  # refused by the checks, not by the handler failing
    assert p.tables.schedules.get(sid) is None and list(p.tables.timers.all()) == []
    assert {k: v for k, v in p.store.data.items() if not k.startswith(b"meta/applied")} == \
        {k: v for k, v in before.items() if not k.startswith(b"meta/applied")}


def test_a_schedule_of_another_partition_or_a_bad_id_or_op_is_rejected() -> None:
    p = new_partition()
    assert _feed_rejected(p, command("create", sid_here(partition=1)))[0].reason == "wrong_partition"
    assert _feed_rejected(p, command("create", "../x"))[0].reason == "malformed"
    assert _feed_rejected(p, command("explode", sid_here()))[0].reason == "unknown_value"


def _feed_rejected(p: Partition, rec: dict[str, Any]) -> list[Any]:
    from reprise.partitions.core.apply import LogRecord, apply_batch
    from reprise.partitions.core.transaction import Transaction
    from reprise.schemas import codec

    p.offset += 1
    value = codec.decode("ScheduleCommand", 1, codec.encode("ScheduleCommand", rec))
    tx = Transaction(p.store)
    result = apply_batch(tx, p.partition, N, [LogRecord("ScheduleCommand", 1, value, p.offset, T0)])
    tx.commit(p.offset)
    return result.rejected


def test_describe_names_the_target_as_the_cli_writes_it() -> None:
    row = {"schedule_id": "s", "cron": "* * * * *", "timezone": "UTC", "catch_up": "once", "service": "Obj",
           "handler": "add", "key": "k/1", "handler_kind": "EXCLUSIVE", "input": b"1", "paused": False,
           "created_ms": 0, "next_tick_ms": None, "timer_key": None, "fired": 0, "skipped": 0,
           "last_tick_ms": None, "last_fired_ms": None, "last_invocation_id": None}
    assert schedule.describe(row)["target"] == "Obj/k/1/add"
    assert spec.parse_target("Obj/k/1/add") == spec.Target("Obj", "k/1", "add")
