"""Which partitions a processor owns: their stores, opened when a partition is gained and closed when
it is lost.

Gaining a partition opens its store (from a snapshot if that is newer), refuses a store ahead of its
log, restores it from the changelog when it is far behind, claims the partition and says where to
resume consuming. Losing one stops acting for it at once and closes its store. Both run on the
apply thread (the consumer's rebalance callbacks run there too); ``stores`` is read by the event
loop and the snapshot thread, and ``lock`` keeps a snapshot from racing a store being closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from reprise.engine.config import Config
from reprise.partitions import metrics
from reprise.partitions.core.transaction import applied_offset
from reprise.partitions.leader.leadership import Leadership
from reprise.partitions.state.changelog import ChangelogWriter, restore
from reprise.partitions.state.log_apply import LogReplay, log_watermarks
from reprise.partitions.state.log_match import check_store_matches_log_or_close
from reprise.partitions.state.rocks_store import RocksStore
from reprise.partitions.state.snapshots import SnapshotStore
from reprise.partitions.state.store_files import prepare_store, store_path

log = logging.getLogger(__name__)


def restores_from_changelog(applied: int, log_end: int, behind_threshold: int) -> bool:
    """A store this far behind its log (a new node, a lost disk, an old snapshot) is brought forward
    with the changelog's deltas first: writing them back is ~10x faster than applying records."""
    return log_end - applied - 1 >= max(1, behind_threshold)


def resume_offset(applied: int) -> int:
    """Where consuming resumes for a store at ``applied``: the next offset, or the log's beginning."""
    return applied + 1 if applied >= 0 else OFFSET_BEGINNING


def readiness(group: bool, assigned: bool, owned: Collection[int], leading: Collection[int]) -> str | None:
    """None when the process owns its partitions and has caught up with each (its leadership claim,
    appended at the log's end when it took the partition, was applied); else why not."""
    if group and not assigned:
        return "no partitions assigned by the consumer group yet"
    behind = sorted(set(owned) - set(leading))
    return f"catching up on partitions {behind}" if behind else None


class Ownership:
    """The partitions this process owns now, gained and lost by assignment."""

    def __init__(self, cfg: Config, snapshots: SnapshotStore, changelog: ChangelogWriter | None,
                 leadership: Leadership, release: Callable[[int], None]) -> None:
        """``release``: stop a partition's attempts, timers and outbox deliveries, and wait for it."""
        self.cfg, self.snapshots, self.changelog = cfg, snapshots, changelog
        self.leadership, self._release = leadership, release
        self.stores: dict[int, RocksStore] = {}
        self.lock = threading.Lock()
        self.assigned = False  # a group member that has had its first assignment

    def gain_all(self, partitions: list[int]) -> list[TopicPartition]:
        """``gain`` for several partitions at once: each mostly waits on the broker (its watermarks,
        the record at its store's offset), and partitions share nothing until they are claimed."""
        if len(partitions) <= 1:
            return [self.gain(p) for p in partitions]
        with ThreadPoolExecutor(min(len(partitions), 8), thread_name_prefix="gain") as pool:
            return list(pool.map(self.gain, partitions))

    def gain(self, partition: int) -> TopicPartition:
        """Open the partition's store (from a snapshot if that is newer), claim it, say where to resume."""
        path = store_path(self.cfg, partition)
        low, end = log_watermarks(self.cfg, partition)
        offset = prepare_store(self.snapshots, partition, path, low)
        store = RocksStore(path)
        # a store ahead of its log (recreated, or its tail lost) is refused, not resumed on
        check_store_matches_log_or_close(self.cfg, partition, store, path, low, end)
        if self.changelog is not None and restores_from_changelog(offset, end, self.cfg.changelog_restore_behind):
            offset = self._restore(partition, store)
        with self.lock:
            self.stores[partition] = store
        metrics.observe_snapshot(partition, self.snapshots.latest(partition))
        log.info("partition %d: owned; resumes after offset %d", partition, offset)
        self.leadership.claim_gained(partition, store)
        return TopicPartition(self.cfg.log_topic, partition, resume_offset(offset))

    def _restore(self, partition: int, store: RocksStore) -> int:
        with LogReplay(self.cfg, partition, store) as replay:
            restored = restore(self.cfg, partition, store, replay.up_to)
        metrics.RESTORE_SECONDS.observe(restored.seconds)
        log.info("partition %d: restored %d records' writes from %d changelog deltas (%d replayed in its holes) "
                 "in %.2f s", partition, restored.covered, restored.deltas, restored.replayed, restored.seconds)
        # deltas the log does not imply (another log's) are refused too
        check_store_matches_log_or_close(self.cfg, partition, store, store_path(self.cfg, partition),
                                         *log_watermarks(self.cfg, partition), restored=True)
        return applied_offset(store)

    def lose(self, partition: int) -> None:
        """Stop acting for the partition at once (attempts, timers and outbox deliveries end here),
        then close its store."""
        self.leadership.forget(partition)
        if self.changelog is not None:
            self.changelog.flush(partition)  # the deltas of what this process applied stay valid
        self._release(partition)
        with self.lock:
            store = self.stores.pop(partition, None)
            if store is not None:
                store.close()
        metrics.forget_partition(partition)
        log.info("partition %d: no longer owned", partition)

    def lose_all(self) -> None:
        for p in list(self.stores):
            self.lose(p)

    def close(self) -> None:
        """Close every store still open (the process is stopping)."""
        with self.lock:
            for s in self.stores.values():
                s.close()
            self.stores.clear()

    # the consumer group's rebalance callbacks (on the apply thread, inside its poll) ----------------
    def on_assign(self, consumer: Any, assigned: list[TopicPartition]) -> None:
        metrics.rebalanced("assign", len(assigned))
        try:
            consumer.incremental_assign(self.gain_all([tp.partition for tp in assigned]))
            self.assigned = True  # (an empty assignment too: more processors than partitions)
        except Exception:
            log.exception("could not take over partitions %s", [tp.partition for tp in assigned])
            raise

    def on_revoke(self, consumer: Any, revoked: list[TopicPartition]) -> None:
        metrics.rebalanced("revoke", len(revoked))
        for tp in revoked:
            self.lose(tp.partition)
        consumer.incremental_unassign(revoked)
