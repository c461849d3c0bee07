"""Fault injection for tests of restore, rebuild, snapshots and the outbox. Never set in production.

``REPRISE_FAULT_CRASH_AT=<point>:<n>``: the process SIGKILLs itself the ``n``-th time it reaches
``point`` (a crash, not an exit: no flush, no close, what RocksDB holds only in memory is lost).
``REPRISE_FAULT_HOLD=<point>=<path>``: on reaching ``point`` the process creates ``<path>.held``
and waits (up to ``HOLD_LIMIT_S``) until ``<path>`` exists, so a test can act while it is stuck there.

``REPRISE_FAULT_FAIL_AT=<point>:<n>``: the ``n``-th time the process reaches ``point`` the operation
there fails (``outbox-produce``: an outbox entry for a log partition is not produced, and its
delivery is reported failed FAILURE_REPORT_S later, as if Kafka refused its batch while later
batches could land).

All three are read once at import: unset, each call is a dictionary lookup that finds nothing.

``arm_journal_crash(n)``: the process SIGKILLs itself once ``n`` more journal entries are committed to
its stores (``journal_committed``, called after each applied batch). Armed only by the test controls
of ``reprise dev`` (deploy/test_controls.py, for ``reprise.testing``); unarmed, a call is one comparison.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

HOLD_LIMIT_S = 300.0
FAILURE_REPORT_S = 0.5


def _crash_plan(var: str = "REPRISE_FAULT_CRASH_AT") -> tuple[str, int] | None:
    raw = os.environ.get(var, "")
    point, _, n = raw.rpartition(":")
    return (point, int(n)) if point and n.isdigit() else None


def _hold_plan() -> tuple[str, Path] | None:
    point, _, path = os.environ.get("REPRISE_FAULT_HOLD", "").partition("=")
    return (point, Path(path)) if point and path else None


_CRASH = _crash_plan()
_FAIL = _crash_plan("REPRISE_FAULT_FAIL_AT")
_HOLD = _hold_plan()
_reached: dict[str, int] = {}
_journal_entries_left: int | None = None


def crash_point(point: str) -> None:
    """Die here if the test asked to (the ``n``-th time this point is reached)."""
    if _CRASH is None or _CRASH[0] != point:
        return
    _reached[point] = _reached.get(point, 0) + 1
    if _reached[point] == _CRASH[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def fail_point(point: str) -> bool:
    """True if the operation here is to fail this time (the ``n``-th time this point is reached)."""
    if _FAIL is None or _FAIL[0] != point:
        return False
    key = "fail:" + point
    _reached[key] = _reached.get(key, 0) + 1
    return _reached[key] == _FAIL[1]


def hold_point(point: str) -> None:
    """Wait here until the test releases this point (creates the file it named)."""
    if _HOLD is None or _HOLD[0] != point:
        return
    release = _HOLD[1]
    release.with_name(release.name + ".held").touch()
    deadline = time.monotonic() + HOLD_LIMIT_S
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def arm_journal_crash(entries: int) -> None:
    """Die once ``entries`` more journal entries are committed (``entries`` >= 1)."""
    global _journal_entries_left
    _journal_entries_left = max(1, entries)


def journal_committed(writes: dict[bytes, bytes | None]) -> None:
    """After a batch's commit: count the journal entries it wrote, and die if the armed count is reached."""
    global _journal_entries_left
    if _journal_entries_left is None:
        return
    _journal_entries_left -= sum(1 for k, v in writes.items() if v is not None and k.startswith(b"jn/"))
    if _journal_entries_left <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
