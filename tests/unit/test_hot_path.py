"""Whether a process's hot path has work (engine/hot_path.py): what turns the pacing of its SQL
queries on and off. The clock is simulated."""

from __future__ import annotations

import gc
import threading
from typing import Any

from reprise.engine.config import Config
from reprise.engine.hot_path import HOT_PATH, HotPath
from reprise.ingress.metrics import INGRESS
from reprise.partitions.invoker.invoker import Invoker
from reprise.partitions.leader.processor import PartitionProcessor


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_mark_keeps_the_process_busy_for_the_quiet_time_only() -> None:
    clock = Clock()
    hot = HotPath(quiet_s=0.25, clock=clock)
    assert not hot.busy()  # never marked
    hot.mark()
    clock.now += 0.2
    assert hot.busy()
    clock.now += 0.1
    assert not hot.busy()
    hot.mark()
    assert hot.busy()


def test_a_watched_count_is_busy_while_above_zero() -> None:
    hot, n = HotPath(clock=Clock()), [0]
    hot.watch(lambda: n[0])
    assert not hot.busy()
    n[0] = 2
    assert hot.busy()
    n[0] = 0
    assert not hot.busy()


class Counter:
    def __init__(self, n: int) -> None:
        self.n = n

    def count(self) -> int:
        return self.n


def test_a_watched_object_that_is_gone_stops_counting() -> None:
    hot = HotPath(clock=Clock())
    counter = Counter(1)
    hot.watch(counter.count)
    assert hot.busy()
    del counter
    gc.collect()
    assert not hot.busy()
    assert hot._counts == ()


class NoRegistry:
    def service(self, name: str) -> None:
        return None


def test_ingress_requests_in_flight_and_running_attempts_make_the_process_busy() -> None:
    HOT_PATH._marked_at = float("-inf")  # no apply loop in this test: only the counts decide
    gc.collect()  # invokers other tests left with attempts in their running set
    assert not HOT_PATH.busy()
    INGRESS.in_flight += 1
    try:
        assert HOT_PATH.busy()
    finally:
        INGRESS.in_flight -= 1
    invoker: Any = Invoker(Config(), NoRegistry(), lambda partition, effects: None)  # type: ignore[arg-type]
    assert not HOT_PATH.busy()
    invoker._running.add(("inv_1", 1))
    assert HOT_PATH.busy()
    invoker._running.clear()
    assert not HOT_PATH.busy()


class OneBatchConsumer:
    """Hands the apply loop one record (of a partition it does not hold), then stops the loop."""

    def __init__(self, stop: Any) -> None:
        self._stop, self.closed = stop, False

    def poll(self, timeout: float) -> Any:
        self._stop.set()
        return Record()

    def consume(self, n: int, timeout: float) -> list[Any]:
        return []

    def close(self) -> None:
        self.closed = True


class Record:
    def error(self) -> None:
        return None

    def partition(self) -> int:
        return 7


class Nothing:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: False


def test_the_apply_loop_marks_the_hot_path_busy_for_each_batch_it_consumes() -> None:
    proc: Any = object.__new__(PartitionProcessor)
    proc._stop, proc.stores, proc.changelog = threading.Event(), {}, None
    proc.shipper = proc.producer = proc.ownership = Nothing()
    consumer = OneBatchConsumer(proc._stop)
    HOT_PATH._marked_at = float("-inf")
    proc._consume(consumer)
    assert consumer.closed
    assert HOT_PATH._marked_at > float("-inf") and HOT_PATH.busy()
