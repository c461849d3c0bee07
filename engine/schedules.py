"""What a durable cron schedule is, shared by the admin API (which checks a request) and apply()
(which checks a record and computes its ticks): the limits, the target's form, the cron expression
and its time zone, which partition owns a schedule, and the idempotency key of a tick.

Cron expressions are parsed by ``cronsim`` (five fields, or six with a leading seconds field) in an
IANA time zone (``zoneinfo``). Nothing here reads a clock: every time is given by the caller, so
apply() computes the same ticks when the log is replayed (with the same time zone database).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from reprise.engine.partitioning import partition_for_key

CATCH_UP = ("skip", "once", "all")
OPS = ("create", "pause", "resume", "delete")
MAX_ID_CHARS = 128
MAX_CRON_CHARS = 256
MAX_ZONE_CHARS = 64
MAX_BODY_BYTES = 64 * 1024  # a schedule's body is stored with it and copied into every fire
MAX_CATCH_UP_TICKS = 100  # catch-up "all": at most this many missed ticks fire (the newest)
SKIP_GRACE_MS = 60_000  # catch-up "skip": a tick this late still fires; a later one is skipped
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Ticks further apart than a year, or none at all (February 30th), are refused: such an expression
# would make apply() walk the calendar for nothing.
_MAX_GAP_S = 366 * 24 * 3600


class ScheduleError(ValueError):
    """A schedule that cannot be: a bad id, cron expression, time zone, target or body."""


@dataclass(frozen=True)
class Target:
    """``Service/handler``, ``Object/key/handler`` or ``Workflow/id/run``."""

    service: str
    key: str | None
    handler: str

    def __str__(self) -> str:
        return f"{self.service}/{self.key}/{self.handler}" if self.key is not None else f"{self.service}/{self.handler}"


def parse_target(text: str) -> Target:
    """The target named by ``text``; an object key may itself contain '/' (first and last part are
    the service and the handler)."""
    parts = text.split("/")
    if len(parts) < 2 or not parts[0] or not parts[-1]:
        raise ScheduleError(f"target {text[:200]!r}: expected Service/handler, Object/key/handler or Workflow/id/run")
    key = "/".join(parts[1:-1]) if len(parts) > 2 else None
    if key == "":
        raise ScheduleError(f"target {text[:200]!r}: the key is empty")
    return Target(parts[0], key, parts[-1])


def check_id(schedule_id: str) -> None:
    if not 0 < len(schedule_id) <= MAX_ID_CHARS or not _ID.fullmatch(schedule_id):
        raise ScheduleError(f"schedule id {schedule_id[:200]!r}: expected 1..{MAX_ID_CHARS} characters of "
                            f"letters, digits, '.', '_' and '-', starting with a letter or digit")


def zone(name: str) -> tzinfo:
    """The zone named; UTC needs no time zone database (a slim image may have none)."""
    if name == "UTC":
        return UTC
    if not 0 < len(name) <= MAX_ZONE_CHARS:
        raise ScheduleError(f"time zone {name[:200]!r}: expected an IANA name such as Europe/Paris")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"time zone {name[:200]!r}: unknown (expected an IANA name such as Europe/Paris)") from None


def check_cron(expr: str, tz: str, now_ms: int) -> int:
    """Check the expression in its zone; returns its first tick after ``now_ms``."""
    if not 0 < len(expr) <= MAX_CRON_CHARS:
        raise ScheduleError(f"cron expression: expected 1..{MAX_CRON_CHARS} characters, found {len(expr)}")
    first = next_tick(expr, tz, now_ms)
    if first is None:
        raise ScheduleError(f"cron expression {expr!r}: it never fires within a year")
    return first


def _iter(expr: str, tz: str, after_ms: int, reverse: bool = False) -> CronSim:
    dt = datetime.fromtimestamp(after_ms / 1000, UTC).astimezone(zone(tz))
    try:
        return CronSim(expr, dt, reverse=reverse)
    except CronSimError as e:
        raise ScheduleError(f"cron expression {expr[:200]!r}: {e}") from None


def _ms(dt: datetime) -> int:
    return int(dt.timestamp()) * 1000  # ticks are whole seconds


def next_tick(expr: str, tz: str, after_ms: int) -> int | None:
    """The first tick strictly after ``after_ms``, or None if there is none within a year."""
    try:
        tick = _ms(next(_iter(expr, tz, after_ms)))
    except (StopIteration, CronSimError):
        return None
    return tick if tick - after_ms <= _MAX_GAP_S * 1000 else None


def ticks_after(expr: str, tz: str, after_ms: int, limit: int) -> list[int]:
    """Up to ``limit`` ticks strictly after ``after_ms``, in order (for display)."""
    out: list[int] = []
    t: int | None = after_ms
    while len(out) < limit and t is not None:
        t = next_tick(expr, tz, t)
        if t is not None:
            out.append(t)
    return out


def due_ticks(expr: str, tz: str, first_ms: int, now_ms: int, limit: int) -> tuple[list[int], bool]:
    """The ticks from ``first_ms`` (itself a tick) up to ``now_ms``, oldest first: at most the newest
    ``limit`` of them. The flag says whether older ones were left out."""
    out = [first_ms]
    it: Iterator[datetime] = _iter(expr, tz, first_ms)
    for dt in it:
        t = _ms(dt)
        if t > now_ms:
            return out, False
        if len(out) == limit:
            break
        out.append(t)
    else:
        return out, False
    # more than ``limit`` are due: the newest ``limit``, walking back from now
    newest: list[int] = []
    for dt in _iter(expr, tz, now_ms + 1, reverse=True):
        t = _ms(dt)
        if t > now_ms:
            continue
        newest.append(t)
        if len(newest) == limit:
            break
    return sorted(newest), True


def owner_partition(schedule_id: str, partitions: int) -> int:
    """The log partition that holds a schedule: its id, hashed as any routing key."""
    return partition_for_key(schedule_id, partitions)


def tick_idempotency_key(schedule_id: str, tick_ms: int) -> str:
    """The idempotency key of one tick's invocation: a tick fired twice names one invocation."""
    return f"schedule/{schedule_id}/{tick_ms}"


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")
