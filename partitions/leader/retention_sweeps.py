"""The leader's periodic check for completed invocations past their retention.

A leader that finds some appends one RetentionSweep record; apply() turns it into the deletes, so a
replay forgets exactly what the live partition forgot. Runs on the event loop, every interval.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Collection, Mapping

from reprise.partitions.core.tables import TablesView
from reprise.partitions.core.transaction import KeyValueStore, Transaction


def retention_cutoff_ms(now_ms: int, retention_s: float) -> int:
    """Completions before this time are past their retention."""
    return now_ms - int(retention_s * 1000)


def has_expired(store: KeyValueStore, before_ms: int) -> bool:
    """The partition holds at least one completion before ``before_ms``."""
    return bool(TablesView(Transaction(store)).completions.before(before_ms, 1))


class RetentionSweeps:
    """Asks each led partition with completions past their retention to forget them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval_s: float, retention_s: float,
                 stores: Mapping[int, KeyValueStore], lock: threading.Lock, leading: Collection[int],
                 sweep: Callable[[int, int], None], stop: threading.Event, clock: Callable[[], int]) -> None:
        """``sweep(partition, before_ms)`` appends the record; ``lock`` keeps a store from closing under a read."""
        self._loop, self._interval_s, self._retention_s = loop, interval_s, retention_s
        self._stores, self._lock, self._leading = stores, lock, leading
        self._sweep, self._stop, self._clock = sweep, stop, clock

    def start(self) -> None:
        self._loop.call_later(self._interval_s, self.check)

    def check(self) -> None:
        """For each led partition with completions past their retention, ask it to forget them."""
        if self._stop.is_set():
            return
        before = retention_cutoff_ms(self._clock(), self._retention_s)
        for p in sorted(self._leading):
            with self._lock:
                store = self._stores.get(p)
                due = store is not None and has_expired(store, before)
            if due:
                self._sweep(p, before)
        self._loop.call_later(self._interval_s, self.check)
