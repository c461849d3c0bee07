"""Partition snapshots: a RocksDB checkpoint of a partition's store, archived with its applied offset.

A snapshot lets a processor that gains a partition, or an operator rebuilding one, start from the
snapshot's offset instead of the beginning of the log. The checkpoint is taken from the live store
(RocksDB makes it consistent: hard links of the SST files plus a flushed memtable) into a scratch
directory beside the store, packed into one tar file and put in the snapshot store; the applied
offset travels inside the store itself (``meta/applied_offset``), so a snapshot can never claim an
offset its contents do not match.

Store layout (a directory by default, or an S3-compatible bucket: ``REPRISE_SNAPSHOT_DIR``)::

    <dir or s3://bucket/prefix>/p<partition>/<applied offset, 20 digits>.tar

The 20-digit name sorts by offset; a snapshot is written to a temporary name and renamed, so a
reader never sees half of one. Retention keeps the newest ``snapshot_retain`` per partition.

Log retention rule: a partition can be rebuilt only if the log still holds every record after the
offset it starts from. With snapshots, records at or below the *oldest retained* snapshot's offset
may be deleted (``reprise partitions trim-log`` does exactly that); without snapshots the log topic
must keep everything (``retention.ms=-1``, the default Reprise creates it with).
"""

from __future__ import annotations

import builtins
import logging
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rocksdict import Checkpoint

from reprise.engine.clock import now_ms
from reprise.engine.faults import crash_point, hold_point
from reprise.partitions.core.transaction import applied_offset
from reprise.partitions.state.durable_files import fsync_dir, fsync_file, replace_dir
from reprise.partitions.state.rocks_store import RocksStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    partition: int
    applied_offset: int
    location: str  # a file path, or an s3:// URL
    created_ms: int
    size_bytes: int


class SnapshotStore:
    """Taking, listing, pruning and restoring snapshots; where the tar files live is a backend's business."""

    where = ""

    def __init__(self, retain: int = 3) -> None:
        self.retain = max(1, retain)

    # the backend: names are "p<partition>/<offset, 20 digits>.tar" -----------------------------
    def _list(self, partition: int) -> list[Snapshot]:
        raise NotImplementedError

    def _put(self, name: str, archive: Path) -> None:
        raise NotImplementedError

    def _fetch(self, snapshot: Snapshot, dest: Path) -> None:
        raise NotImplementedError

    def _delete(self, snapshot: Snapshot) -> None:
        raise NotImplementedError

    # shared -----------------------------------------------------------------------------------
    def list(self, partition: int) -> list[Snapshot]:
        """This partition's snapshots, oldest first."""
        return sorted(self._list(partition), key=lambda s: s.applied_offset)

    def latest(self, partition: int) -> Snapshot | None:
        snaps = self.list(partition)
        return snaps[-1] if snaps else None

    def take(self, partition: int, store: RocksStore, scratch: Path) -> Snapshot:
        """Checkpoint ``store`` and archive it; then apply retention."""
        return self.publish(partition, self.checkpoint(store, scratch, partition))

    def checkpoint(self, store: RocksStore, scratch: Path, partition: int) -> Path:
        """A RocksDB checkpoint of the open ``store`` in a scratch directory (hard links of its files
        plus its memtables flushed: fast). The only step that needs the store; ``publish`` the rest."""
        scratch.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"snap-p{partition}-", dir=scratch))
        try:
            Checkpoint(store.db).create_checkpoint(str(work / "db"))
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return work

    def publish(self, partition: int, work: Path) -> Snapshot:
        """Archive a ``checkpoint`` and put it in the snapshot store (slow: a tar and an upload, done
        without holding the store); then apply retention. Removes ``work``."""
        try:
            offset = _offset_of(work / "db")
            existing = [s for s in self.list(partition) if s.applied_offset == offset]
            if existing:  # nothing applied since the last one
                return existing[0]
            archive = work / "snapshot.tar"
            with tarfile.open(archive, "w") as tar:
                tar.add(work / "db", arcname="db")
            hold_point("snapshot.publish")
            self._put(f"p{partition}/{offset:020d}.tar", archive)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.prune(partition)
        kept = self.list(partition)
        ours = [s for s in kept if s.applied_offset == offset]
        if ours:
            return ours[0]
        if kept:  # processors share the store: ``retain`` newer ones, published meanwhile, pruned ours at once
            return kept[-1]
        raise RuntimeError(f"partition {partition}: the snapshot at offset {offset} vanished as it was published")

    def prune(self, partition: int) -> builtins.list[Snapshot]:  # (``list`` here is the method above)
        """Delete all but the newest ``retain`` snapshots; returns what it deleted."""
        doomed = self.list(partition)[:-self.retain]
        for s in doomed:
            self._delete(s)
        return doomed

    def restore(self, snapshot: Snapshot, store_path: Path) -> int:
        """Replace the store at ``store_path`` (closed) with the snapshot's contents; its applied offset.

        Crash-safe: the snapshot is unpacked beside the store, fsynced, and renamed into place
        (durable_files.replace_dir); a crash leaves the old store, none, or the snapshot's."""
        staging = store_path.with_name(store_path.name + ".restoring")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        archive = staging / "snapshot.tar"
        self._fetch(snapshot, archive)
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")
        crash_point("snapshot.unpacked")
        replace_dir(staging / "db", store_path)
        shutil.rmtree(staging, ignore_errors=True)
        return snapshot.applied_offset


class DirectorySnapshots(SnapshotStore):
    """Snapshots in a directory (local disk, or a shared volume several processors mount)."""

    def __init__(self, root: Path, retain: int = 3) -> None:
        super().__init__(retain)
        self.root = root
        self.where = str(root)

    def _list(self, partition: int) -> list[Snapshot]:
        out = []
        for f in (self.root / f"p{partition}").glob("*.tar"):
            try:
                st = f.stat()
                out.append(Snapshot(partition, int(f.stem), str(f), int(st.st_mtime * 1000), st.st_size))
            except (ValueError, FileNotFoundError):
                continue  # not ours, or removed by retention meanwhile
        return out

    def _put(self, name: str, archive: Path) -> None:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp-{os.getpid()}")  # a reader never sees half a snapshot
        shutil.copyfile(archive, tmp)
        fsync_file(tmp)  # its bytes on disk before its name says it is a snapshot
        os.replace(tmp, target)
        fsync_dir(target.parent)  # and the rename too
        fsync_dir(self.root)  # and the partition's directory, if it is new

    def _fetch(self, snapshot: Snapshot, dest: Path) -> None:
        shutil.copyfile(snapshot.location, dest)

    def _delete(self, snapshot: Snapshot) -> None:
        Path(snapshot.location).unlink(missing_ok=True)


class S3Snapshots(SnapshotStore):
    """Snapshots as objects in an S3-compatible bucket (partitions/state/s3.py)."""

    def __init__(self, url: str, retain: int = 3) -> None:
        from reprise.partitions.state.s3 import S3Bucket

        super().__init__(retain)
        self.bucket = S3Bucket(url)
        self.where = url

    def _list(self, partition: int) -> list[Snapshot]:
        out = []
        for obj in self.bucket.list(f"p{partition}/"):
            stem = obj.key.rsplit("/", 1)[-1].removesuffix(".tar")
            if stem.isdigit():
                out.append(Snapshot(partition, int(stem), f"s3://{self.bucket.bucket}/{self.bucket.key(obj.key)}",
                                    now_ms(), obj.size))
        return out

    def _put(self, name: str, archive: Path) -> None:
        self.bucket.put(name, archive.read_bytes())

    def _fetch(self, snapshot: Snapshot, dest: Path) -> None:
        dest.write_bytes(self.bucket.get(self._name(snapshot)))

    def _delete(self, snapshot: Snapshot) -> None:
        self.bucket.delete(self._name(snapshot))

    @staticmethod
    def _name(snapshot: Snapshot) -> str:
        return f"p{snapshot.partition}/{snapshot.applied_offset:020d}.tar"


def open_snapshots(location: str, retain: int) -> SnapshotStore:
    """``s3://bucket/prefix?...`` or a directory."""
    return S3Snapshots(location, retain) if location.startswith("s3://") else DirectorySnapshots(Path(location), retain)


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
