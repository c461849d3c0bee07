"""Partition snapshots: a RocksDB checkpoint of a partition's store, archived with its applied offset.

A snapshot lets a processor that gains a partition, or an operator rebuilding one, start from the
snapshot's offset instead of the beginning of the log. The checkpoint is taken from the live store
(RocksDB makes it consistent: hard links of the SST files plus a flushed memtable) into a scratch
directory beside the store, packed into one tar file and put in the snapshot store; the applied
offset travels inside the store itself (``meta/applied_offset``), so a snapshot can never claim an
offset its contents do not match.

Store layout (a directory by default, ``REPRISE_SNAPSHOT_DIR``)::

    <dir>/p<partition>/<applied offset, 20 digits>.tar

The 20-digit name sorts by offset; a snapshot is written to a temporary name and renamed, so a
reader never sees half of one. Retention keeps the newest ``snapshot_retain`` per partition.

Log retention rule: a partition can be rebuilt only if the log still holds every record after the
offset it starts from. With snapshots, records at or below the *oldest retained* snapshot's offset
may be deleted (``reprise partitions trim-log`` does exactly that); without snapshots the log topic
must keep everything (``retention.ms=-1``, the default Reprise creates it with).
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rocksdict import Checkpoint

from partitions.store import RocksStore, applied_offset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    partition: int
    applied_offset: int
    path: Path
    created_ms: int
    size_bytes: int


class SnapshotStore:
    """Snapshots in a directory (local disk, or a shared volume several processors mount)."""

    def __init__(self, root: Path, retain: int = 3) -> None:
        self.root = root
        self.retain = max(1, retain)

    def _dir(self, partition: int) -> Path:
        return self.root / f"p{partition}"

    def list(self, partition: int) -> list[Snapshot]:
        """This partition's snapshots, oldest first."""
        d = self._dir(partition)
        if not d.exists():
            return []
        out = []
        for f in sorted(d.glob("*.tar")):
            try:
                st = f.stat()
                out.append(Snapshot(partition, int(f.stem), f, int(st.st_mtime * 1000), st.st_size))
            except (ValueError, FileNotFoundError):
                continue  # not ours, or removed by retention meanwhile
        return out

    def latest(self, partition: int) -> Snapshot | None:
        snaps = self.list(partition)
        return snaps[-1] if snaps else None

    def take(self, partition: int, store: RocksStore, scratch: Path) -> Snapshot:
        """Checkpoint ``store`` and archive it; then apply retention."""
        scratch.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"snap-p{partition}-", dir=scratch))
        try:
            checkpoint = work / "db"
            Checkpoint(store.db).create_checkpoint(str(checkpoint))
            offset = _offset_of(checkpoint)
            target = self._dir(partition) / f"{offset:020d}.tar"
            if target.exists():  # nothing applied since the last one
                return self.list_one(partition, target)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".tmp-{os.getpid()}")
            with tarfile.open(tmp, "w") as tar:
                tar.add(checkpoint, arcname="db")
            os.replace(tmp, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.prune(partition)
        return self.list_one(partition, target)

    def list_one(self, partition: int, path: Path) -> Snapshot:
        st = path.stat()
        return Snapshot(partition, int(path.stem), path, int(st.st_mtime * 1000), st.st_size)

    def prune(self, partition: int) -> list[Snapshot]:
        """Delete all but the newest ``retain`` snapshots; returns what it deleted."""
        snaps = self.list(partition)
        doomed = snaps[:-self.retain]
        for s in doomed:
            s.path.unlink(missing_ok=True)
        return doomed

    def restore(self, snapshot: Snapshot, store_path: Path) -> int:
        """Replace the store at ``store_path`` (closed) with the snapshot's contents; its applied offset."""
        staging = store_path.with_name(store_path.name + ".restoring")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with tarfile.open(snapshot.path) as tar:
            tar.extractall(staging, filter="data")
        shutil.rmtree(store_path, ignore_errors=True)
        os.replace(staging / "db", store_path)
        shutil.rmtree(staging, ignore_errors=True)
        return snapshot.applied_offset


def _offset_of(checkpoint: Path) -> int:
    store = RocksStore(checkpoint)
    try:
        return applied_offset(store)
    finally:
        store.close()


def restore_if_newer(snapshots: SnapshotStore, partition: int, store_path: Path, local_offset: int) -> int | None:
    """Restore the newest snapshot into ``store_path`` (closed) if it is ahead of the local store.

    Returns the restored offset, or None when the local store was at least as new.
    """
    snap = snapshots.latest(partition)
    if snap is None or snap.applied_offset <= local_offset:
        return None
    started = time.perf_counter()
    offset = snapshots.restore(snap, store_path)
    log.info("partition %d: restored snapshot at offset %d (local store was at %d) in %.2fs",
             partition, offset, local_offset, time.perf_counter() - started)
    return offset
