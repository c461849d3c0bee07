"""Rebuilding a partition's store from its topic, and a digest to prove the result is the same.

The log is the truth (ARCHITECTURE invariant 1): deleting a partition's RocksDB and replaying its
topic from the start through apply() must give the same bytes. ``digest`` hashes every key and value
of a store in key order; ``rebuild`` replays without acting (no leader actions), as fast as apply goes.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import NamedTuple

from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition
from reprise.engine import gc_policy
from reprise.engine.config import Config
from reprise.engine.faults import crash_point
from reprise.engine.kafka import log_partitions, new_consumer, next_batch, topic_partitions, watermarks
from reprise.partitions.core.apply import LogRecord, apply_batch
from reprise.partitions.core.transaction import Transaction, applied_offset
from reprise.partitions.state.changelog import ChangelogWriter, restore
from reprise.partitions.state.durable_files import ASIDE, remove_dir
from reprise.partitions.state.log_match import check_store_matches_log
from reprise.partitions.state.rocks_store import RocksStore, bound_memtables
from reprise.partitions.state.snapshots import SnapshotStore, open_snapshots, restore_if_newer
from reprise.schemas import codec


def store_path(cfg: Config, partition: int) -> Path:
    return cfg.data_dir / "partitions" / f"p{partition}"


def local_partitions(cfg: Config) -> list[int]:
    root = cfg.data_dir / "partitions"
    return sorted(int(p.name[1:]) for p in root.iterdir()
                  if p.name.startswith("p") and p.name[1:].isdigit()) if root.exists() else []  # not p3.restoring


def digest(cfg: Config, partition: int) -> str:
    """SHA-256 over every (key, value) of the partition's store, in key order."""
    store = RocksStore(store_path(cfg, partition))
    try:
        h = hashlib.sha256()
        for k, v in store.scan(b""):
            h.update(len(k).to_bytes(4, "big") + k + len(v).to_bytes(4, "big") + v)
        return h.hexdigest()
    finally:
        store.close()


def decode(msgs: list[Message]) -> tuple[list[LogRecord], list[tuple[Message, str]]]:
    """Log records, and the messages that do not decode (with why)."""
    records, bad = [], []
    for m in msgs:
        try:
            kind, version = codec.kind_of(m.headers())
            records.append(LogRecord(kind, version, codec.decode(kind, version, m.value() or b""), m.offset(),
                                     m.timestamp()[1]))
        except codec.SchemaError as e:
            bad.append((m, str(e)))
    return records, bad


class Rebuilt(NamedTuple):
    """A rebuild's figures: log records the store now reflects beyond where it started, and how many
    of them came from the changelog's deltas rather than through apply()."""

    records: int
    seconds: float
    from_changelog: int = 0


def rebuild(cfg: Config, partition: int, from_snapshot: bool = False) -> Rebuilt:
    """Delete the partition's store and bring it to the end of its topic.

    From the start of the topic, or from the newest snapshot and the records after it; with
    ``cfg.changelog``, the changelog's deltas stand in for the records they cover.
    """
    path = store_path(cfg, partition)
    remove_dir(path)  # a crash leaves the old store or none, never half of it
    crash_point("rebuild.removed")
    if from_snapshot:
        snapshots = open_snapshots(cfg.snapshot_location, cfg.snapshot_retain)
        if restore_if_newer(snapshots, partition, path, -1) is None:
            raise SnapshotMissing(f"partition {partition}: no snapshot in {cfg.snapshot_location}")
    return catch_up(cfg, partition, use_changelog=cfg.changelog)


def rebuild_many(cfg: Config, partitions: list[int], from_snapshot: bool = False,
                 jobs: int | None = None) -> tuple[dict[int, Rebuilt], float]:
    """Rebuild several partitions at once, one process each (up to ``jobs``, default the CPU count).

    Why processes: apply() is Python, so one process replays one partition on one core at most;
    partitions share nothing (own topic partition, own RocksDB), so a node's stores rebuild in
    parallel. Returns each partition's (records, seconds) and the wall time of the whole.
    """
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    started = time.perf_counter()
    if len(partitions) <= 1 or jobs == 1:
        return {p: rebuild(cfg, p, from_snapshot) for p in partitions}, time.perf_counter() - started
    workers = min(len(partitions), jobs or os.cpu_count() or 1)
    # spawn, not fork: this process may already run librdkafka threads, which a fork would not carry
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=start_worker,
                             initargs=(cfg.gc_gen0_threshold, (cfg.store_memtable_mb << 20) // workers)) as pool:
        futures = {p: pool.submit(rebuild, cfg, p, from_snapshot) for p in partitions}
        results = {p: f.result() for p, f in futures.items()}
    return results, time.perf_counter() - started


def start_worker(gen0_threshold: int, memtable_bytes: int) -> None:
    """A rebuild worker process: collect as a started engine does, and keep its memtables within its
    share of the node's budget (``store_memtable_mb`` split among the workers, so that a rebuild of
    every partition at once holds no more memtable memory than the engine that will serve them)."""
    gc_policy.settle(gen0_threshold)
    bound_memtables(memtable_bytes)


class SnapshotMissing(RuntimeError):
    """A rebuild from a snapshot found none."""


class LogTruncated(RuntimeError):
    """The log no longer holds the records a partition's state needs, and no snapshot covers the gap."""


def log_watermarks(cfg: Config, partition: int) -> tuple[int, int]:
    """The first offset the log still holds for the partition (above 0 once retention deleted some),
    and its end."""
    consumer = new_consumer(cfg)
    try:
        return watermarks(consumer, cfg.log_topic, partition)
    finally:
        consumer.close()


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


def catch_up(cfg: Config, partition: int, use_changelog: bool = False,
             changelog: ChangelogWriter | None = None, batch: int = 5000) -> Rebuilt:
    """Apply whatever the topic holds beyond the store's applied offset, without acting.

    ``use_changelog``: first write back the changelog's deltas (replaying the log only in its holes).
    ``changelog``: write a delta per applied batch of at most ``batch`` records (seeds a changelog).
    """
    path = store_path(cfg, partition)
    store = RocksStore(path)
    started = time.perf_counter()
    try:
        check_store_matches_log(cfg, partition, store, path, *log_watermarks(cfg, partition))
        with LogReplay(cfg, partition, store, changelog, batch) as replay:
            covered = 0
            if use_changelog and topic_partitions(cfg, cfg.changelog_topic) > partition:
                restored = restore(cfg, partition, store, replay.up_to)
                covered = restored.covered
                check_store_matches_log(cfg, partition, store, path, *log_watermarks(cfg, partition), restored=True)
            replay.up_to(None)
            return Rebuilt(covered + replay.applied, time.perf_counter() - started, covered)
    finally:
        store.close()


class LogReplay:
    """Applies a partition's log records to its store through apply(), from the store's applied
    offset on, without acting: a rebuild, a digest's catch-up, the holes of a changelog restore."""

    def __init__(self, cfg: Config, partition: int, store: RocksStore, changelog: ChangelogWriter | None = None,
                 batch: int = 5000) -> None:
        self.cfg, self.partition, self.store = cfg, partition, store
        self.changelog, self.batch = changelog, batch
        self.applied = 0
        self._count = log_partitions(cfg)
        self._consumer = new_consumer(cfg, **{"fetch.wait.max.ms": 100})
        self._assigned_at: int | None = None

    def __enter__(self) -> LogReplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self._consumer.close()
        if self.changelog is not None:
            self.changelog.flush()
            self.changelog.producer.flush(60)

    def up_to(self, last: int | None) -> int:
        """Apply records up to offset ``last`` inclusive (None: the topic's current end); returns how
        many were applied. Stops early if the topic ends first."""
        start, end = watermarks(self._consumer, self.cfg.log_topic, self.partition)
        if last is not None:
            end = min(end, last + 1)
        position = applied_offset(self.store) + 1
        if position >= end:
            return 0
        if start > position:  # the consumer would silently begin at the log's new start
            raise LogTruncated(f"partition {self.partition}: the log starts at offset {start}, the store needs "
                               f"offset {position} on: rebuild from a snapshot (--from-snapshot)")
        if self._assigned_at != position:  # else the consumer is already there, fetched ahead
            self._consumer.assign([TopicPartition(self.cfg.log_topic, self.partition, position or OFFSET_BEGINNING)])
        before = self.applied
        while position < end:
            fetched = next_batch(self._consumer, min(self.batch, end - position), 1.0)
            if fetched:
                self._assigned_at = fetched[-1].offset() + 1  # where the consumer stands now
            msgs = [m for m in fetched if m.error() is None and m.offset() < end]
            if not msgs:
                continue
            records, _ = decode(msgs)
            tx = Transaction(self.store)
            apply_batch(tx, self.partition, self._count, records)
            writes = tx.commit(msgs[-1].offset(), msgs[-1].timestamp()[1])
            crash_point("restore.replay")
            if self.changelog is not None:  # the store stood at position - 1 before this batch
                self.changelog.record(self.partition, position - 1, msgs[-1].offset(), writes,
                                      msgs[-1].timestamp()[1])
            position = msgs[-1].offset() + 1
            self.applied += len(msgs)
        return self.applied - before
