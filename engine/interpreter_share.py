"""A cap on the share of a process's interpreter that background work (SQL introspection) may take.

Why: every thread of a process runs Python under one GIL. A query's scan and answer cost 20-40 µs
of interpreter per row; run flat out beside the apply loop and the ingress they took half of it
(CPython hands the GIL between threads every 5 ms and the query always wants it back), and the
engine's request rate halved while queries ran (docs/introspection.md, "A query beside the load").

``InterpreterShare`` is a token bucket of CPU seconds: it refills at ``share`` seconds per second,
holds at most one ``slice_s``, and every thread doing such work draws from it (through its own
``Meter``, which reads the thread's CPU clock). A thread that finds the bucket empty sleeps until
it has refilled; sleeping releases the GIL, so the apply loop and the ingress run meanwhile. All
such threads together take at most ``share`` of the process's interpreter, however many run.

Only while the engine has work: ``busy`` (the process's hot path, engine/hot_path.py) is asked at
each accounting, once a slice of CPU has been used; while it says idle the work runs unpaced (and
the bucket stays full), and once it says busy again the next slice is paced.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from reprise.engine.hot_path import HOT_PATH


class InterpreterShare:
    def __init__(self, share: float, slice_s: float = 0.002, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 cpu: Callable[[], float] = time.thread_time,
                 busy: Callable[[], bool] = lambda: True) -> None:
        self._lock = threading.Lock()
        self._clock, self._sleep, self._cpu, self._busy = clock, sleep, cpu, busy
        self.slice_s = slice_s
        self.share = share
        self._tokens, self._at = slice_s, clock()

    def set_share(self, share: float) -> None:
        """At most ``share`` (0 < share <= 1) of the interpreter; 1 leaves the work unpaced."""
        if not 0 < share <= 1:
            raise ValueError(f"expected a share of the interpreter in (0, 1], found {share}")
        self.share = share

    def spend(self, cpu_s: float) -> None:
        """Account ``cpu_s`` seconds of interpreter just used; sleeps while the bucket is in debt
        and the engine is busy."""
        if self.share >= 1:
            return
        busy = self._busy()
        with self._lock:
            now = self._clock()
            if not busy:  # nothing to protect: unpaced, and a full bucket when the load comes
                self._tokens, self._at = self.slice_s, now
                return
            self._tokens = min(self.slice_s, self._tokens + (now - self._at) * self.share) - cpu_s
            self._at = now
            debt = -self._tokens
        if debt > 0:
            self._sleep(debt / self.share)

    def meter(self) -> Meter:
        """A meter for the calling thread (CPU clocks are per thread)."""
        return Meter(self, self._cpu)


class Meter:
    """One thread's draw on an ``InterpreterShare``: ``pace()`` often (every few rows); it costs a
    clock read, and accounts (and maybe sleeps) once a slice of CPU has been used."""

    def __init__(self, share: InterpreterShare, cpu: Callable[[], float]) -> None:
        self._share, self._cpu = share, cpu
        self._mark = cpu()

    def pace(self) -> None:
        used = self._cpu() - self._mark
        if used >= self._share.slice_s:
            self._share.spend(used)
            self._mark = self._cpu()


# The process's cap for SQL introspection (scans, answers): REPRISE_QUERY_CPU_SHARE,
# set by the admin API; paced only while the process's hot path has work
QUERIES = InterpreterShare(0.25, busy=HOT_PATH.busy)
