"""A handler's journal retention (Restate's ``journal_retention``): the journal of a completed
invocation is kept that long (0: dropped at completion), never longer than its status; the status
and result stay for their own retention. The retention reaches apply() in the InvokerEffects record."""

from __future__ import annotations

from typing import Any

from reprise.partitions.core.actions import ScheduleTimer
from tests.unit.apply_helpers import Partition, inv_on, invoke, new_partition, output, run, run_done

ENTRIES = [run(1), run_done(1, b'"x"'), output(b'"done"')]


def completed(p: Partition, journal_ms: int | None, ts: int = 2_000, **extra: Any) -> tuple[str, list[Any]]:
    inv = inv_on(0)
    invoke(p, inv, **extra)
    actions = p.feed("InvokerEffects", {
        "invocation_id": inv, "attempt": 1, "epoch": 1, "timestamp_ms": ts, "deployment_id": "dp_1",
        "entries": ENTRIES, "outcome": {}, "journal_retention_ms": journal_ms}, ts)
    return inv, actions


def timers(p: Partition) -> list[tuple[str, str, int]]:
    return [(key, t["kind"], t["fire_at_ms"]) for key, t in p.tables.timers.all()]


def test_zero_drops_the_journal_at_completion_and_keeps_the_status_and_result() -> None:
    p = new_partition()
    inv, _ = completed(p, 0)
    row = p.status(inv)
    assert (row["status"], row["result_value"], row["journal_retention_ms"]) == ("COMPLETED", b'"done"', 0)
    assert row["journal_length"] == 0 and p.tables.journals.entry(inv, 0) is None
    assert timers(p) == []  # nothing left to drop later


def test_a_journal_retention_drops_the_journal_when_its_timer_fires() -> None:
    p = new_partition()
    inv, actions = completed(p, 5_000)
    assert p.status(inv)["journal_length"] == 4 and p.status(inv)["journal_retention_ms"] == 5_000
    [(key, kind, at)] = timers(p)
    assert (kind, at) == ("journal", 7_000) and ScheduleTimer(key, 7_000) in actions
    p.feed("TimerFired", {"timer_key": key, "epoch": 1, "timestamp_ms": 7_000}, 7_000)
    row = p.status(inv)
    assert (row["status"], row["result_value"], row["journal_length"]) == ("COMPLETED", b'"done"', 0)
    assert p.tables.journals.entry(inv, 0) is None


def test_without_a_journal_retention_the_journal_goes_with_the_status_and_no_timer_is_set() -> None:
    p = new_partition()
    inv, _ = completed(p, None)
    assert p.status(inv)["journal_length"] == 4 and p.status(inv)["journal_retention_ms"] is None
    assert timers(p) == []


def test_an_idempotent_invocations_journal_retention_is_capped_by_its_completion_retention() -> None:
    p = new_partition()
    inv, _ = completed(p, 10 * 86_400_000, idempotency_key="k")
    assert p.status(inv)["journal_retention_ms"] == 86_400_000  # the default completion retention: a day
    assert [kind for _, kind, _ in timers(p)] == ["cleanup"]  # the status's timer takes the journal too
    q = new_partition()
    inv, _ = completed(q, 1_000, idempotency_key="k")
    assert q.status(inv)["journal_retention_ms"] == 1_000
    assert sorted(kind for _, kind, _ in timers(q)) == ["cleanup", "journal"]


def test_a_journal_timer_after_the_status_was_purged_changes_nothing() -> None:
    p = new_partition()
    inv, _ = completed(p, 5_000)
    p.feed("AdminCommand", {"invocation_id": inv, "command": "purge", "reply_to": None})
    [(key, _, _)] = timers(p)
    p.feed("TimerFired", {"timer_key": key, "epoch": 1, "timestamp_ms": 7_000}, 7_000)
    assert p.tables.invocations.get(inv) is None and timers(p) == []


def test_replaying_the_same_records_gives_the_same_store() -> None:
    stores = []
    for _ in range(2):
        p = new_partition()
        inv, _ = completed(p, 5_000)
        [(key, _, _)] = timers(p)
        p.feed("TimerFired", {"timer_key": key, "epoch": 1, "timestamp_ms": 7_000}, 7_000)
        stores.append(dict(p.store.data))
    assert stores[0] == stores[1]


def test_a_kill_applies_the_journal_retention_its_last_attempt_carried() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    p.feed("InvokerEffects", {
        "invocation_id": inv, "attempt": 1, "epoch": 1, "timestamp_ms": 2_000, "deployment_id": "dp_1",
        "entries": [run(1)], "outcome": {"completions": [1], "signals": [], "named_signals": []},
        "journal_retention_ms": 0}, 2_000)
    assert p.status(inv)["status"] == "SUSPENDED" and p.status(inv)["journal_retention_ms"] == 0
    p.feed("AdminCommand", {"invocation_id": inv, "command": "kill", "reply_to": None})
    row = p.status(inv)
    assert (row["status"], row["journal_length"]) == ("COMPLETED", 0) and p.tables.journals.entry(inv, 0) is None
