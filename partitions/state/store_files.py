"""Where a partition's store lives on disk, and preparing it before a processor opens it."""

from __future__ import annotations

import shutil
from pathlib import Path

from reprise.engine.config import Config
from reprise.partitions.core.transaction import applied_offset
from reprise.partitions.state.durable_files import ASIDE
from reprise.partitions.state.log_apply import LogTruncated
from reprise.partitions.state.rocks_store import RocksStore
from reprise.partitions.state.snapshots import SnapshotStore, restore_if_newer


def store_path(cfg: Config, partition: int) -> Path:
    return cfg.data_dir / "partitions" / f"p{partition}"


def local_partitions(cfg: Config) -> list[int]:
    root = cfg.data_dir / "partitions"
    return sorted(int(p.name[1:]) for p in root.iterdir()
                  if p.name.startswith("p") and p.name[1:].isdigit()) if root.exists() else []  # not p3.restoring


def prepare_store(snapshots: SnapshotStore, partition: int, path: Path, log_start: int) -> int:
    """Make the local store the newest state available before a processor opens it: its applied offset.

    The newest snapshot replaces the local store if it is further ahead (less to replay). If the log
    has been trimmed past what the result needs, refuse rather than build a state with a hole in it.
    """
    for leftover in (ASIDE, ".restoring"):  # what a crash mid-replace or mid-restore left beside the store
        shutil.rmtree(path.with_name(path.name + leftover), ignore_errors=True)
    local = -1
    if path.exists():
        store = RocksStore(path)
        local = applied_offset(store)
        store.close()
    restored = restore_if_newer(snapshots, partition, path, local)
    offset = restored if restored is not None else local
    if offset + 1 < log_start:
        raise LogTruncated(f"partition {partition}: the log starts at offset {log_start}, the newest state here "
                           f"(local store or snapshot in {snapshots.where}) ends at offset {offset}: records "
                           f"{offset + 1}..{log_start - 1} are gone. Restore a newer snapshot into that directory.")
    return offset
