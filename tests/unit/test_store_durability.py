"""Crash safety of the store's own writes and files, on real RocksDB in a process that SIGKILLs
itself: restored rows (written without the WAL) are never lost under a later WAL'd write, a store
directory is replaced whole, a snapshot file is fsynced before the rename that publishes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reprise.partitions.core.transaction import APPLIED_OFFSET, Transaction, applied_mark, applied_offset
from reprise.partitions.state import snapshots as snapshots_module
from reprise.partitions.state.rocks_store import RocksStore
from reprise.partitions.state.snapshots import DirectorySnapshots
from reprise.partitions.state.store_files import prepare_store

ROOT = Path(__file__).resolve().parents[2]


def killed(code: str, env: dict[str, str] | None = None) -> None:
    """Run ``code`` in a fresh interpreter that must end SIGKILLed (by itself or a fault point)."""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, **(env or {})})
    assert out.returncode == -signal.SIGKILL, out.stderr[-2000:]


def test_a_crash_after_a_replayed_batch_keeps_the_restored_rows_under_it(tmp_path: Path) -> None:
    # A restore writes rows without the WAL (up to offset 5), then replays a hole through apply()
    # with it (offset 6), then the process dies before any flush.
    killed(f"""
import os, signal
from pathlib import Path
from reprise.partitions.core.transaction import Transaction
from reprise.partitions.state.rocks_store import RocksStore
store = RocksStore(Path({str(tmp_path / 'p0')!r}))
store.write_restored({{b"restored": b"r", b"meta/applied_offset": b"5"}})
tx = Transaction(store)
tx.put(b"replayed", b"x")
tx.commit(6)
os.kill(os.getpid(), signal.SIGKILL)
""")
    store = RocksStore(tmp_path / "p0")
    try:  # the later offset survived (WAL): so must every row below it
        assert applied_offset(store) == 6 and store.get(b"replayed") == b"x"
        assert store.get(b"restored") == b"r"
    finally:
        store.close()


def test_a_crash_replacing_a_store_leaves_the_old_one_or_none(tmp_path: Path) -> None:
    snaps = DirectorySnapshots(tmp_path / "snaps")
    store = RocksStore(tmp_path / "p0")
    tx = Transaction(store)
    tx.put(b"k", b"snapshot")
    tx.commit(9)
    snaps.take(0, store, tmp_path / "scratch")
    store.close()
    old = RocksStore(tmp_path / "p1")
    tx = Transaction(old)
    tx.put(b"k", b"old")
    tx.commit(3)
    old.close()
    killed(f"""
from pathlib import Path
from reprise.partitions.state.snapshots import DirectorySnapshots
snaps = DirectorySnapshots(Path({str(tmp_path / 'snaps')!r}))
snaps.restore(snaps.latest(0), Path({str(tmp_path / 'p1')!r}))
""", {"REPRISE_FAULT_CRASH_AT": "store.replace:1"})
    assert not (tmp_path / "p1").exists()  # between the renames: none (the next start restores again)
    assert (tmp_path / "p1.deleting").exists()  # the old one, whole, aside
    assert prepare_store(snaps, 0, tmp_path / "p1", 0) == 9  # a start: restored, the leftovers gone
    store = RocksStore(tmp_path / "p1")
    assert store.get(b"k") == b"snapshot"
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("p1")) == ["p1"]


def test_a_snapshot_is_fsynced_before_the_rename_that_publishes_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: object, dst: object) -> None:
        events.append(("rename", str(src)))
        real_replace(src, dst)

    store = RocksStore(tmp_path / "p0")
    tx = Transaction(store)
    tx.put(b"k", b"v")
    tx.commit(4)
    snaps = DirectorySnapshots(tmp_path / "snaps")
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(snapshots_module.os, "replace", replace)
    snaps.take(0, store, tmp_path / "scratch")
    store.close()
    renamed = [i for i, (what, _) in enumerate(events) if what == "rename"]
    assert len(renamed) == 1, events
    tmp = events[renamed[0]][1]
    assert ("fsync", tmp) in events[:renamed[0]], events  # the file's bytes, before its name
    assert ("fsync", str(tmp_path / "snaps" / "p0")) in events[renamed[0]:], events  # then the rename


def test_the_applied_offset_carries_the_mark_of_its_record(tmp_path: Path) -> None:
    store = RocksStore(tmp_path / "p0")
    try:
        Transaction(store).commit(41)
        assert (applied_offset(store), applied_mark(store)) == (41, None)  # as older stores hold it
        Transaction(store).commit(42, 1_700_000_000_123)
        assert store.get(APPLIED_OFFSET) == b"42@1700000000123"
        assert (applied_offset(store), applied_mark(store)) == (42, 1_700_000_000_123)
    finally:
        store.close()


def test_a_snapshot_pruned_at_once_by_newer_ones_of_other_processors_is_not_an_error(tmp_path: Path) -> None:
    """Processors share the snapshot store: one that publishes an older snapshot than ``retain`` newer
    ones is pruned at once; publishing then answers the newest instead of failing the snapshot thread."""
    snaps = DirectorySnapshots(tmp_path / "snapshots", retain=1)
    newer = tmp_path / "snapshots" / "p0" / f"{10:020d}.tar"
    newer.parent.mkdir(parents=True)
    newer.write_bytes(b"another processor's")
    store = RocksStore(tmp_path / "store")
    tx = Transaction(store)
    tx.put(b"st/x", b"1")
    tx.commit(5)
    snap = snaps.take(0, store, tmp_path / "scratch")
    store.close()
    assert snap.applied_offset == 10 and [s.applied_offset for s in snaps.list(0)] == [10]


def test_a_store_open_elsewhere_says_stop_it_first(tmp_path: Path) -> None:
    from reprise.partitions.state.rocks_store import StoreLocked

    held = RocksStore(tmp_path / "data" / "reprise" / "partitions" / "p0")
    try:
        with pytest.raises(StoreLocked, match="stop it first"):
            RocksStore(tmp_path / "data" / "reprise" / "partitions" / "p0")
        out = subprocess.run([sys.executable, "-m", "reprise", "partitions", "digest", "--no-catch-up",
                              "--home", str(tmp_path), "--kafka", "127.0.0.1:1"],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 6, out.stderr  # docs/cli.md: a store a running process holds
        assert "stop it first" in out.stderr and "Traceback" not in out.stderr
    finally:
        held.close()
