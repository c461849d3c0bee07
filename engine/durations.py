"""Durations as Restate's admin API writes and reads them: the "friendly" form (``1d``, ``1h 30m``,
``500ms``) and ISO 8601 (``PT1H30M``). Milliseconds are the engine's unit; finer parts are refused."""

from __future__ import annotations

import re

_UNITS_MS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1))
_NAMES = {"ms": 1, "msec": 1, "millis": 1, "millisecond": 1, "milliseconds": 1,
          "s": 1_000, "sec": 1_000, "secs": 1_000, "second": 1_000, "seconds": 1_000,
          "m": 60_000, "min": 60_000, "mins": 60_000, "minute": 60_000, "minutes": 60_000,
          "h": 3_600_000, "hr": 3_600_000, "hrs": 3_600_000, "hour": 3_600_000, "hours": 3_600_000,
          "d": 86_400_000, "day": 86_400_000, "days": 86_400_000,
          "w": 7 * 86_400_000, "week": 7 * 86_400_000, "weeks": 7 * 86_400_000}
_FRIENDLY_PART = re.compile(r"\s*(\d+)\s*([a-zA-Z]+)\s*,?")
_ISO = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d{1,3})?)S)?)?$")


def format_ms(ms: int) -> str:
    """``90000`` -> ``1m 30s``; ``0`` -> ``0s``."""
    if ms <= 0:
        return "0s"
    parts = []
    for unit, size in _UNITS_MS:
        n, ms = divmod(ms, size)
        if n:
            parts.append(f"{n}{unit}")
    return " ".join(parts)


def parse_ms(text: str) -> int:
    """Milliseconds of a friendly or ISO 8601 duration; ValueError says what was expected."""
    s = text.strip()
    iso = _ISO.match(s.upper()) if s[:1] in ("P", "p") else None
    if iso is not None and any(iso.groups()):
        w, d, h, m, sec = iso.groups()
        return ((int(w or 0) * 7 + int(d or 0)) * 86_400_000 + int(h or 0) * 3_600_000 + int(m or 0) * 60_000
                + round(float(sec or 0) * 1000))
    total, pos = 0, 0
    while pos < len(s):
        part = _FRIENDLY_PART.match(s, pos)
        if part is None or part.group(2).lower() not in _NAMES:
            raise ValueError(f"{text!r} is not a duration: expected e.g. '1h 30m', '500ms', '1d' or 'PT1H'")
        total += int(part.group(1)) * _NAMES[part.group(2).lower()]
        pos = part.end()
    if pos == 0:
        raise ValueError(f"{text!r} is not a duration: expected e.g. '1h 30m', '500ms', '1d' or 'PT1H'")
    return total
