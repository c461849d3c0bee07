"""Whether a process's hot path (ingress, apply loop, invoker) has work now: what decides whether
its SQL queries are paced (engine/interpreter_share.py).

Why: the cap on the interpreter a query takes protects the engine's throughput, but on an idle
process it only makes the query four times slower, and there is nothing to protect. So the cap
paces only while this says busy.

Two kinds of signal, both O(1) for the hot path:

* ``mark()``: a store of the time, by work that comes in bursts (the apply loop, once per batch it
  consumed). The process counts as busy for ``quiet_s`` after the last mark, so a short gap between
  two batches under load does not unpace queries.
* ``watch(count)``: a count the hot path keeps anyway (requests in flight at the ingress, attempts
  running in the invoker), read only when a query asks; busy while any is above zero.

Both are read from the queries' worker threads while the hot path writes them from its own: a
float store and an int read are atomic in CPython, and a count read a moment stale only shifts
pacing by one slice.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable

QUIET_S = 0.25  # after the last mark: a closed-loop load's gaps between batches are far shorter


class HotPath:
    def __init__(self, quiet_s: float = QUIET_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet_s = quiet_s
        self._clock = clock
        self._marked_at = float("-inf")
        self._counts: tuple[Callable[[], Callable[[], int] | None], ...] = ()  # each: the count, or None once gone
        self._lock = threading.Lock()  # watch() only: the hot path never takes it

    def mark(self) -> None:
        """The hot path did work just now (one store)."""
        self._marked_at = self._clock()

    def watch(self, count: Callable[[], int]) -> None:
        """Busy while ``count()`` > 0. A bound method is held weakly (an invoker that is gone stops
        counting); any other callable for the life of the process."""
        ref: Callable[[], Callable[[], int] | None]
        if hasattr(count, "__self__") and hasattr(count, "__func__"):
            ref = weakref.WeakMethod(count)
        else:
            ref = lambda: count  # noqa: E731 - a module-level count lives as long as the process
        with self._lock:
            self._counts = (*self._counts, ref)

    def busy(self) -> bool:
        """Whether the hot path has work now, or had within ``quiet_s``."""
        if self._clock() - self._marked_at < self.quiet_s:
            return True
        gone = False
        for ref in self._counts:
            count = ref()
            if count is None:
                gone = True
            elif count() > 0:
                return True
        if gone:
            self._forget_gone()
        return False

    def _forget_gone(self) -> None:
        with self._lock:
            self._counts = tuple(r for r in self._counts if r() is not None)


# The process's hot path: the ingress and the invoker register their counts, the apply loop marks
HOT_PATH = HotPath()
