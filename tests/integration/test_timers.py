"""100,000 durable timers in a real RocksDB: all fire once, and memory holds only a window of them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from reprise.partitions.core.tables import Tables
from reprise.partitions.core.transaction import Transaction
from reprise.partitions.leader.timers import TimerService
from reprise.partitions.state.rocks_store import RocksStore

N = 100_000


def _fill(store: RocksStore, start_ms: int, spread_ms: int) -> None:
    tx = Transaction(store)
    tables = Tables(tx)
    for i in range(N):
        fire_at = start_ms + (i * spread_ms) // N
        key = tables.timer_key(fire_at, f"inv{i:06d}/sleep/1")
        tables.timers.put(key, {"kind": "sleep", "invocation_id": f"inv{i:06d}", "fire_at_ms": fire_at,
                               "completion_id": 1})
    tx.commit(0)


def test_100k_timers_fire_once_with_bounded_memory(tmp_path: Path) -> None:
    store = RocksStore(tmp_path / "p0")
    start = int(time.time() * 1000) + 500
    _fill(store, start, spread_ms=4_000)
    fired: list[str] = []
    early: list[str] = []

    def fire(partition: int, key: str) -> None:
        fired.append(key)
        if time.time() * 1000 < int(key[3:18]):
            early.append(key)
        tx = Transaction(store)  # apply() deletes a fired timer's row
        tx.delete(key.encode())
        tx.commit(None)

    async def run() -> TimerService:
        timers = TimerService(fire, window_s=1.0, max_loaded=5_000, reload_every_s=0.2)
        timers.start_partition(0, store)
        deadline = time.monotonic() + 60
        while len(fired) < N and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        timers.close()
        return timers

    timers = asyncio.run(run())
    store.close()
    print(f"{N} timers fired; at most {timers.peak_loaded} held in memory at once")
    assert len(fired) == N and len(set(fired)) == N
    assert early == []  # none fired before its time
    assert timers.peak_loaded <= 5_000


def test_a_new_timer_inside_the_window_is_scheduled_at_once(tmp_path: Path) -> None:
    store = RocksStore(tmp_path / "p0")
    fired: list[str] = []

    async def run() -> None:
        timers = TimerService(lambda p, k: fired.append(k), window_s=30.0, reload_every_s=60.0)
        timers.start_partition(0, store)
        soon = int(time.time() * 1000) + 100
        later = int(time.time() * 1000) + 3_600_000
        timers.schedule(0, Tables.timer_key(soon, "a"), soon)
        timers.schedule(0, Tables.timer_key(later, "b"), later)  # beyond the window: left in the store
        await asyncio.sleep(0.5)
        assert timers.pending() == 0
        timers.close()

    asyncio.run(run())
    store.close()
    assert len(fired) == 1 and fired[0].endswith("/a")


def test_a_timer_fired_again_after_a_refusal_fires_once_more(tmp_path: Path) -> None:
    store = RocksStore(tmp_path / "p0")
    fired: list[str] = []

    async def run() -> None:
        timers = TimerService(lambda p, k: fired.append(k), window_s=30.0, reload_every_s=60.0)
        timers.start_partition(0, store)
        soon = int(time.time() * 1000) + 50
        key = Tables.timer_key(soon, "a")
        timers.schedule(0, key, soon)
        await asyncio.sleep(0.3)
        assert fired == [key]  # fired, and gone from memory
        timers.refire(0, key, delay_s=0.1)  # its record was refused
        timers.refire(1, key, delay_s=0.1)  # a partition this leader no longer serves: nothing
        await asyncio.sleep(0.5)
        timers.close()

    asyncio.run(run())
    store.close()
    assert len(fired) == 2 and fired[0] == fired[1]
