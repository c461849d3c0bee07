"""The leader's timer service: turns due durable timers into TimerFired records.

Timers live in the store (apply() writes them); this keeps an asyncio handle per pending timer of
the partitions this process leads. A fired timer produces a record; apply() then acts on it, so a
timer fires exactly once even if the record is produced twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

FireSink = Callable[[int, str], None]


class TimerService:
    def __init__(self, fire: FireSink) -> None:
        self._fire = fire
        self._handles: dict[tuple[int, str], asyncio.TimerHandle] = {}

    def schedule(self, partition: int, timer_key: str, fire_at_ms: int) -> None:
        key = (partition, timer_key)
        if key in self._handles:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, fire_at_ms / 1000 - time.time())
        self._handles[key] = loop.call_at(loop.time() + delay, self._due, partition, timer_key)

    def _due(self, partition: int, timer_key: str) -> None:
        self._handles.pop((partition, timer_key), None)
        self._fire(partition, timer_key)

    def drop_partition(self, partition: int) -> None:
        for key in [k for k in self._handles if k[0] == partition]:
            self._handles.pop(key).cancel()

    def pending(self) -> int:
        return len(self._handles)

    def close(self) -> None:
        for h in self._handles.values():
            h.cancel()
        self._handles.clear()
