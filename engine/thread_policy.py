"""Helper threads (librdkafka's, RocksDB's) run as ``SCHED_BATCH``, so waking one never preempts the
thread that holds Python's GIL.

Why: ``Producer.produce`` holds the GIL while it queues a record and wakes librdkafka's broker
thread. On a machine with every core busy, Linux lets a thread that has slept run at once on the
core of the thread that woke it; the engine's GIL holder then sits preempted, and no Python in the
process runs, until the scheduler gives its core back. Measured (2 cores, two busy processes beside
it): a ``produce`` call took 39-83 µs of wall time on average (p99 0.3-2.4 ms) against 6.5-7.1 µs
(p99 22-27 µs) with librdkafka's threads in ``SCHED_BATCH``; in the engine under one-way sends the
ingress's and invoker's produce calls averaged 39-115 µs (p99 0.55-1.7 ms) for 7-16 µs of CPU, and
15-24 µs with the policy (docs/benchmarks.md, "Helper threads in SCHED_BATCH").
A ``SCHED_BATCH`` thread gets the same share of the CPU as before (same nice level); it only waits
for the current thread's slice instead of cutting in. Unprivileged; Linux only (elsewhere a no-op).

The libraries start threads when they need them (a broker connection each), so the engine repeats
the scan every few seconds (``keep_demoted``): a scan reads ``/proc/self/task``, ~30 entries.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

# Thread names (``comm``) of the libraries' own threads: librdkafka names its threads "rdk:main",
# "rdk:broker1", ...; RocksDB its background pool "rocksdb:low", "rocksdb:high".
HELPER_PREFIXES = ("rdk:", "rocksdb:")
SCAN_INTERVAL_S = 5.0


def thread_names(pid: int | str = "self") -> dict[int, str]:
    """A process's threads (this one's by default): thread id to name (``comm``). Threads that end
    while it reads are left out."""
    names = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names[int(task.name)] = (task / "comm").read_text().rstrip("\n")
        except OSError:
            continue
    return names


def demote_helpers(prefixes: tuple[str, ...] = HELPER_PREFIXES) -> int:
    """Move this process's helper threads still in ``SCHED_OTHER`` to ``SCHED_BATCH``; returns how many moved."""
    batch = getattr(os, "SCHED_BATCH", None)
    if batch is None or not Path("/proc/self/task").is_dir():
        return 0
    moved = 0
    for tid, name in thread_names().items():
        if not name.startswith(prefixes):
            continue
        try:
            if os.sched_getscheduler(tid) == os.SCHED_OTHER:
                os.sched_setscheduler(tid, batch, os.sched_param(0))
                moved += 1
        except OSError:  # the thread ended meanwhile, or the policy is not ours to change
            continue
    return moved


async def keep_demoted(interval_s: float = SCAN_INTERVAL_S) -> None:
    """Demote helper threads now and every ``interval_s`` (new broker connections start new threads)."""
    while True:
        moved = demote_helpers()  # ~0.3 ms: cheaper inline than a hop to an executor thread
        if moved:
            log.debug("%d helper threads now SCHED_BATCH", moved)
        await asyncio.sleep(interval_s)
