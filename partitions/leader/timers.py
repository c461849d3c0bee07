"""The leader's timer service: turns due durable timers into TimerFired records.

Timers live in the store (apply() writes them). Memory holds only a window of them: per partition a
cursor marks how far the store has been loaded; a load takes the timers due before now + window, at
most ``max_loaded`` at a time, and later loads (periodic, or when memory runs low) move the cursor on.
A new timer at or before the cursor is scheduled at once; one after it waits for its load. So 100,000
pending timers cost memory for those near their due time, not for all of them. A fired timer produces
a record; apply() acts on it and deletes the row, so a timer fires once even if produced twice.

``advance(ms)`` moves the service's clock ahead (timers due within it fire now): for the test
controls of ``reprise dev`` only (deploy/test_controls.py), never reachable in a cluster role.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from reprise.engine.clock import now_ms
from reprise.engine.critical import check_task_fault, watch_task
from reprise.partitions.core.transaction import KeyValueStore

FireSink = Callable[[int, str], None]
_PREFIX = "tm/"


class TimerService:
    def __init__(self, fire: FireSink, window_s: float = 30.0, max_loaded: int = 10_000,
                 reload_every_s: float = 5.0) -> None:
        self._fire = fire
        self._window_ms = int(window_s * 1000)
        self._max = max_loaded
        self._reload_every = reload_every_s
        self._handles: dict[tuple[int, str], asyncio.TimerHandle] = {}
        self._per_partition: dict[int, int] = {}
        self._stores: dict[int, KeyValueStore] = {}
        self._cursor: dict[int, str] = {}
        self._reloader: asyncio.Task[None] | None = None
        self.peak_loaded = 0
        self.skew_ms = 0  # how far advance() moved this service's clock ahead of the wall clock

    def _now_ms(self) -> int:
        return now_ms() + self.skew_ms

    def advance(self, ms: int) -> None:
        """Move the clock ahead by ``ms``: what is loaded is scheduled again against it, and loads go on
        from where they stood, now up to the later horizon."""
        self.skew_ms += max(0, ms)
        loaded = list(self._handles)
        for key in loaded:
            self._handles.pop(key).cancel()
            self._per_partition[key[0]] -= 1
        for partition, timer_key in loaded:
            self._add(partition, timer_key, int(timer_key[len(_PREFIX):len(_PREFIX) + 15]))
        for partition in list(self._stores):
            self._load(partition)

    def start_partition(self, partition: int, store: KeyValueStore) -> None:
        """Begin serving a partition's timers (on becoming its leader)."""
        self._stores[partition] = store
        self._cursor[partition] = ""
        self._per_partition.setdefault(partition, 0)
        self._load(partition)
        if self._reloader is None:
            # critical: without it, timers past the loaded window would never fire (engine/critical.py)
            self._reloader = watch_task(asyncio.get_running_loop().create_task(self._reload_forever()), "timers")

    def schedule(self, partition: int, timer_key: str, fire_at_ms: int) -> None:
        cursor = self._cursor.get(partition)
        if cursor is None or timer_key > cursor:
            return  # not loaded yet: a later load picks it up before it is due
        self._add(partition, timer_key, fire_at_ms)

    def _add(self, partition: int, timer_key: str, fire_at_ms: int) -> None:
        key = (partition, timer_key)
        if key in self._handles:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, (fire_at_ms - self.skew_ms) / 1000 - time.time())
        self._handles[key] = loop.call_at(loop.time() + delay, self._due, partition, timer_key)
        self._per_partition[partition] = self._per_partition.get(partition, 0) + 1
        self.peak_loaded = max(self.peak_loaded, len(self._handles))

    def _load(self, partition: int) -> None:
        """Load the next timers after the cursor that are due within the window (at most the cap)."""
        store = self._stores.get(partition)
        if store is None:
            return
        horizon = f"{_PREFIX}{self._now_ms() + self._window_ms:015d}/\xff"
        room = self._max - self._per_partition.get(partition, 0)
        cursor = self._cursor[partition]
        start = (cursor + "\x00").encode() if cursor else _PREFIX.encode()
        last = None
        for k, _ in store.scan(_PREFIX.encode(), start):
            key = k.decode()
            if key > horizon or room <= 0:
                break
            self._add(partition, key, int(key[len(_PREFIX):len(_PREFIX) + 15]))
            room -= 1
            last = key
        self._cursor[partition] = horizon if room > 0 else (last or cursor)

    def _due(self, partition: int, timer_key: str) -> None:
        if self._handles.pop((partition, timer_key), None) is None:
            return
        self._per_partition[partition] -= 1
        self._fire(partition, timer_key)
        if self._per_partition[partition] < self._max // 2 and self._cursor.get(partition, "") < self._horizon_now():
            self._load(partition)

    def _horizon_now(self) -> str:
        return f"{_PREFIX}{self._now_ms():015d}/\xff"

    async def _reload_forever(self) -> None:
        check_task_fault("timers")
        while True:
            await asyncio.sleep(self._reload_every)
            for partition in list(self._stores):
                self._load(partition)

    def refire(self, partition: int, timer_key: str, delay_s: float = 1.0) -> None:
        """Fire a timer again after ``delay_s``: its TimerFired record did not reach the log. Harmless if
        it did after all: apply() acts on a timer once and ignores a second fire of a deleted one."""
        if partition in self._stores:
            self._add(partition, timer_key, self._now_ms() + int(delay_s * 1000))

    def drop_partition(self, partition: int) -> None:
        for key in [k for k in self._handles if k[0] == partition]:
            self._handles.pop(key).cancel()
        for d in (self._stores, self._cursor, self._per_partition):
            d.pop(partition, None)

    def pending(self) -> int:
        return len(self._handles)

    def close(self) -> None:
        if self._reloader is not None:
            self._reloader.cancel()
        for h in self._handles.values():
            h.cancel()
        self._handles.clear()
