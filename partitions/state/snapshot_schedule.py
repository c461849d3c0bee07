"""When a processor snapshots its partitions: on demand (the admin API) and every interval for the
partitions it leads (followers would only duplicate the leader's snapshot).

Runs on a thread of its own. Only the RocksDB checkpoint needs the store open, and it is taken under
the owner's lock so a store is never closed under it; the tar and the upload run after, unlocked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from reprise.partitions import metrics
from reprise.partitions.state.rocks_store import RocksStore
from reprise.partitions.state.snapshots import Snapshot, SnapshotStore

log = logging.getLogger(__name__)


def snapshot_targets(leading: Collection[int]) -> list[int]:
    """The partitions a periodic round snapshots, in order: the ones this process leads."""
    return sorted(leading)


class SnapshotSchedule:
    """Snapshots the owned partitions in ``stores`` into ``snapshots``."""

    def __init__(self, snapshots: SnapshotStore, stores: Mapping[int, RocksStore], lock: threading.Lock,
                 scratch: Path) -> None:
        """``lock``: held by the owner while it closes a store; ``scratch``: where checkpoints are made."""
        self.snapshots, self._stores, self._lock, self._scratch = snapshots, stores, lock, scratch

    def take(self, partition: int) -> Snapshot | None:
        """Snapshot one owned partition now (None if this process does not own it)."""
        with self._lock:  # only the checkpoint needs the store open; tar and upload run after
            store = self._stores.get(partition)
            if store is None:
                return None
            work = self.snapshots.checkpoint(store, self._scratch, partition)
        snap = self.snapshots.publish(partition, work)
        metrics.observe_snapshot(partition, snap)
        return snap

    def run(self, stop: threading.Event, interval_s: float, leading: Callable[[], Collection[int]]) -> None:
        """Every ``interval_s`` until ``stop``, snapshot the partitions ``leading()`` names; a failed
        snapshot is logged and retried next round."""
        while not stop.wait(interval_s):
            for p in snapshot_targets(leading()):
                try:
                    snap = self.take(p)
                    if snap is not None:
                        log.info("partition %d: snapshot at offset %d (%d bytes)", p, snap.applied_offset,
                                 snap.size_bytes)
                except Exception:  # noqa: BLE001 - a failed snapshot is retried next round
                    log.exception("partition %d: snapshot failed", p)
