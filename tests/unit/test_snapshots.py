"""Snapshots on real RocksDB files: take, list, prune, restore, and the log-truncation guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprise.partitions.core.transaction import Transaction, applied_offset
from reprise.partitions.state.log_apply import LogTruncated
from reprise.partitions.state.rocks_store import RocksStore
from reprise.partitions.state.snapshots import DirectorySnapshots, restore_if_newer
from reprise.partitions.state.store_files import prepare_store


def write(store: RocksStore, offset: int, **rows: str) -> None:
    tx = Transaction(store)
    for k, v in rows.items():
        tx.put(k.encode(), v.encode())
    tx.commit(offset)


def test_snapshot_round_trip_and_retention(tmp_path: Path) -> None:
    snaps = DirectorySnapshots(tmp_path / "snaps", retain=2)
    store = RocksStore(tmp_path / "p0")
    for offset in (10, 20, 30):
        write(store, offset, **{f"k{offset}": str(offset)})
        assert snaps.take(0, store, tmp_path / "scratch").applied_offset == offset
    assert [s.applied_offset for s in snaps.list(0)] == [20, 30]  # the oldest was pruned
    assert snaps.take(0, store, tmp_path / "scratch").applied_offset == 30  # nothing new: same snapshot
    write(store, 40, k40="40")
    store.close()

    target = tmp_path / "restored"
    assert restore_if_newer(snaps, 0, target, -1) == 30
    restored = RocksStore(target)
    assert applied_offset(restored) == 30
    assert restored.get(b"k30") == b"30" and restored.get(b"k10") == b"10" and restored.get(b"k40") is None
    restored.close()
    assert restore_if_newer(snaps, 0, target, 35) is None  # the local store is newer: kept
    assert list((tmp_path / "scratch").iterdir()) == []  # checkpoints do not pile up


def test_prepare_store_prefers_what_is_newest_and_refuses_a_gap(tmp_path: Path) -> None:
    snaps = DirectorySnapshots(tmp_path / "snaps")
    source = RocksStore(tmp_path / "source")
    write(source, 99, a="1")
    snaps.take(3, source, tmp_path / "scratch")
    source.close()

    local = tmp_path / "p3"
    store = RocksStore(local)
    write(store, 50, old="1")
    store.close()
    assert prepare_store(snaps, 3, local, log_start=0) == 99  # the snapshot is ahead: restored
    assert prepare_store(snaps, 3, local, log_start=100) == 99  # the log starts right after it: fine
    with pytest.raises(LogTruncated, match="records 100..149 are gone"):
        prepare_store(snaps, 3, local, log_start=150)
    assert prepare_store(DirectorySnapshots(tmp_path / "none"), 7, tmp_path / "p7", log_start=0) == -1
