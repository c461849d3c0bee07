"""Wall-clock time in milliseconds, as records carry it (``created_ms``, ``timestamp_ms``, timers).

Only adapters read the clock; apply() takes time from its records, never from here (a replay must
decide as the first pass did). Timers, attempts and the ingress stamp records with ``now_ms()``.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the Unix epoch."""
    return int(time.time() * 1000)
