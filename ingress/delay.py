"""Parsing ``?delay=``: ISO-8601 (``PT10S``), friendly (``10s``, ``1m30s``, ``500ms``) or bare milliseconds.

A delay is bounded (``MAX_DELAY_MS``, one year): a larger one would overflow the record's Avro
``long`` of milliseconds or no client could wait for it, and either must be refused up front with a
400, never accepted with a 202 and then dead-lettered. Digits are ASCII only.
"""

from __future__ import annotations

import math
import re

MAX_DELAY_MS = 365 * 86_400_000
_UNITS_MS = {"ms": 1, "s": 1000, "sec": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_DIGITS = re.compile(r"[0-9]+")
_FRIENDLY = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|sec|min|s|m|h|d)", re.ASCII)
_ISO = re.compile(r"^P(?:([0-9]+)D)?(?:T(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+(?:\.[0-9]+)?)S)?)?$",
                  re.IGNORECASE | re.ASCII)
_FORMS = "expected ISO-8601 (PT10S), friendly (10s, 500ms) or milliseconds"


def parse_delay_ms(text: str) -> int:
    """Milliseconds in [0, MAX_DELAY_MS], or ValueError with a message fit for a 400."""
    ms = _parse(text.strip())
    if ms is None:
        raise ValueError(f"bad delay {text[:100]!r}: {_FORMS}")
    if not ms <= MAX_DELAY_MS:  # also NaN and infinity
        raise ValueError(f"bad delay {text[:100]!r}: longer than the maximum of {MAX_DELAY_MS // 86_400_000} days")
    return int(ms)


def _parse(s: str) -> float | None:
    if _DIGITS.fullmatch(s):
        return float(s) if len(s) > 18 else int(s)  # float: a huge one compares, never overflows
    m = _ISO.match(s)
    if m and s.upper() not in ("P", "PT"):
        d, h, mi, sec = (float(g) if g else 0.0 for g in m.groups())
        return ((d * 24 + h) * 60 + mi) * 60_000 + sec * 1000
    pos, total = 0, 0.0
    compact = s.replace(" ", "")
    for fm in _FRIENDLY.finditer(compact):
        if fm.start() != pos:
            break
        total += float(fm.group(1)) * _UNITS_MS[fm.group(2)]
        pos = fm.end()
    if compact and pos == len(compact) and not math.isnan(total):
        return total
    return None
