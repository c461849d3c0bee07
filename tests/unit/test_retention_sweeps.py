"""The leader's periodic retention check (partitions/leader/retention_sweeps.py): a led partition
with a completion past its retention is asked to forget it; others are left alone (no broker)."""

from __future__ import annotations

import threading
from typing import Any

from reprise.partitions.leader.retention_sweeps import RetentionSweeps, has_expired, retention_cutoff_ms
from tests.unit.apply_helpers import inv_on, invoke, new_partition, output


class Loop:
    """Stands in for the event loop: records what is scheduled instead of running it."""

    def __init__(self) -> None:
        self.later: list[tuple[float, Any]] = []

    def call_later(self, delay: float, fn: Any) -> None:
        self.later.append((delay, fn))


def completed_at(ms: int) -> Any:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    p.effects(inv, 1, [output(b'"ok"')], {}, ts=ms)
    return p


def test_the_cutoff_is_now_minus_the_retention() -> None:
    assert retention_cutoff_ms(100_000, 60) == 40_000
    assert retention_cutoff_ms(100_000, 0.5) == 99_500


def test_a_completion_older_than_the_cutoff_has_expired() -> None:
    p = completed_at(5_000)
    assert has_expired(p.store, 5_001)
    assert not has_expired(p.store, 5_000)
    assert not has_expired(new_partition().store, 10**12)


def test_only_led_partitions_past_their_retention_are_swept_and_the_check_repeats() -> None:
    old, young, followed = completed_at(1_000), completed_at(90_000), completed_at(1_000)
    loop, swept, stop = Loop(), [], threading.Event()
    sweeps = RetentionSweeps(loop, 5.0, 60, {0: old.store, 1: young.store, 2: followed.store},  # type: ignore[arg-type]
                             threading.Lock(), {0, 1, 3}, lambda p, before: swept.append((p, before)), stop,
                             lambda: 100_000)
    sweeps.start()
    assert [d for d, _ in loop.later] == [5.0]
    loop.later.pop()[1]()
    assert swept == [(0, 40_000)]  # 1 is young, 2 is not led, 3 is not owned
    assert [d for d, _ in loop.later] == [5.0]
    stop.set()
    loop.later.pop()[1]()
    assert swept == [(0, 40_000)] and loop.later == []  # stopped: no sweep, no next check
