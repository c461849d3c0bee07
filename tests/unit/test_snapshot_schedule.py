"""When a processor snapshots (partitions/state/snapshot_schedule.py): on demand for an owned
partition, every interval for the led ones; a failed snapshot does not end the schedule. Real
RocksDB stores and a snapshot directory, no broker."""

from __future__ import annotations

import threading
from pathlib import Path

from reprise.partitions.core.transaction import Transaction
from reprise.partitions.state.rocks_store import RocksStore
from reprise.partitions.state.snapshot_schedule import SnapshotSchedule
from reprise.partitions.state.snapshots import DirectorySnapshots


def store_at(path: Path, offset: int) -> RocksStore:
    store = RocksStore(path)
    tx = Transaction(store)
    tx.put(b"st/k", b"v")
    tx.commit(offset)
    return store


def test_a_snapshot_is_taken_of_an_owned_partition_only(tmp_path: Path) -> None:
    snaps = DirectorySnapshots(tmp_path / "snaps")
    stores = {0: store_at(tmp_path / "p0", 7)}
    schedule = SnapshotSchedule(snaps, stores, threading.Lock(), tmp_path / "scratch")
    snap = schedule.take(0)
    assert snap is not None and snap.applied_offset == 7 and snaps.latest(0) == snap
    assert schedule.take(1) is None and snaps.latest(1) is None
    stores[0].close()


def test_each_round_snapshots_the_led_partitions_and_survives_a_failure(tmp_path: Path) -> None:
    snaps = DirectorySnapshots(tmp_path / "snaps")
    stores = {p: store_at(tmp_path / f"p{p}", 10 + p) for p in range(3)}
    stores[2].close()  # its checkpoint fails: logged, the round goes on
    schedule = SnapshotSchedule(snaps, stores, threading.Lock(), tmp_path / "scratch")
    stop, rounds = threading.Event(), []

    def leading() -> set[int]:
        rounds.append(1)
        if len(rounds) == 2:
            stop.set()
        return {2, 0}  # led: 0 and 2; partition 1 is only followed

    schedule.run(stop, 0.01, leading)
    assert len(rounds) == 2
    assert snaps.latest(0) is not None and snaps.latest(0).applied_offset == 10  # type: ignore[union-attr]
    assert snaps.latest(1) is None and snaps.latest(2) is None
    for p in (0, 1):
        stores[p].close()
