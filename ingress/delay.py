"""Parsing ``?delay=``: ISO-8601 (``PT10S``), friendly (``10s``, ``1m30s``, ``500ms``) or bare milliseconds."""

from __future__ import annotations

import re

_UNITS_MS = {"ms": 1, "s": 1000, "sec": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_FRIENDLY = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h|d)")
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.IGNORECASE)


def parse_delay_ms(text: str) -> int:
    """Milliseconds, or ValueError with a message fit for a 400."""
    s = text.strip()
    if s.isdigit():
        return int(s)
    m = _ISO.match(s)
    if m and s.upper() not in ("P", "PT"):
        d, h, mi, sec = (float(g) if g else 0.0 for g in m.groups())
        return int(((d * 24 + h) * 60 + mi) * 60_000 + sec * 1000)
    pos, total = 0, 0.0
    compact = s.replace(" ", "")
    for fm in _FRIENDLY.finditer(compact):
        if fm.start() != pos:
            break
        total += float(fm.group(1)) * _UNITS_MS[fm.group(2)]
        pos = fm.end()
    if compact and pos == len(compact):
        return int(total)
    raise ValueError(f"bad delay {text!r}: expected ISO-8601 (PT10S), friendly (10s, 500ms) or milliseconds")
