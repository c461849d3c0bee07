"""The stores of a process share one memtable budget (partitions/state/rocks_store.py ``bound_memtables``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reprise.partitions.state.rocks_store import RocksStore, bound_memtables

MB = 1 << 20


@pytest.fixture(autouse=True)
def _unbounded_after() -> Iterator[None]:
    yield
    bound_memtables(0)


def _fill(store: RocksStore, megabytes: int) -> dict[bytes, bytes]:
    """Write ``megabytes`` of 1 KiB values in batches of 64, as apply's commits do; returns them."""
    written = {}
    for _ in range(megabytes * 16):
        puts = {b"jn/" + os.urandom(16): os.urandom(1024) for _ in range(64)}
        store.write(puts)
        written.update(puts)
    return written


def _memtables(store: RocksStore) -> int:
    return store.db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0


def _settled(measure: Callable[[], int], bound: int) -> int:
    """``measure()`` once the background flushes the budget triggered have caught up (or after 20 s)."""
    deadline = time.monotonic() + 20
    while (value := measure()) > bound and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def test_without_a_budget_a_store_keeps_its_writes_in_its_memtable(tmp_path: Path) -> None:
    store = RocksStore(tmp_path / "p0")
    try:
        _fill(store, 12)
        assert _memtables(store) >= 10 * MB  # below the 16 MB write buffer: nothing flushed
    finally:
        store.close()


def test_stores_opened_after_bound_memtables_share_its_budget(tmp_path: Path) -> None:
    budget = bound_memtables(8 * MB)
    assert budget is not None
    stores = [RocksStore(tmp_path / f"p{i}") for i in range(2)]
    try:
        written = [_fill(s, 12) for s in stores]
        # 24 MB written, 12 into each store: the budget flushed them rather than let them hold it all
        usage = _settled(budget.get_usage, 12 * MB)
        assert 0 < usage <= 12 * MB
        assert _settled(lambda: sum(map(_memtables, stores)), 12 * MB) <= 12 * MB
        for s, rows in zip(stores, written, strict=True):  # flushed, not lost
            for k, v in list(rows.items())[::97]:
                assert s.get(k) == v
    finally:
        for s in stores:
            s.close()


def test_a_store_opened_before_the_budget_is_not_charged_to_it(tmp_path: Path) -> None:
    early = RocksStore(tmp_path / "early")
    budget = bound_memtables(8 * MB)
    assert budget is not None
    try:
        _fill(early, 2)
        assert budget.get_usage() == 0
    finally:
        early.close()


def test_a_rebuild_worker_keeps_its_share_of_the_budget(tmp_path: Path) -> None:
    """``rebuild_many`` starts each worker process with ``start_worker``: the stores it rebuilds are
    bounded by its share, as the engine's would be, not each by RocksDB's own defaults."""
    from reprise.partitions.state.rebuild import start_worker

    start_worker(0, 8 * MB)
    store = RocksStore(tmp_path / "p0")
    try:
        _fill(store, 12)
        assert _settled(lambda: _memtables(store), 8 * MB) <= 8 * MB
    finally:
        store.close()
