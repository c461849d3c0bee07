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

from confluent_kafka import OFFSET_BEGINNING, KafkaException, Message, TopicPartition

from engine.config import Config
from engine.kafka import high_watermark, log_partitions, new_consumer, next_batch
from partitions.apply import LogRecord, apply_batch
from partitions.snapshots import SnapshotStore, open_snapshots, restore_if_newer
from partitions.store import RocksStore, Transaction, applied_offset
from schemas import codec


def store_path(cfg: Config, partition: int) -> Path:
    return cfg.data_dir / "partitions" / f"p{partition}"


def local_partitions(cfg: Config) -> list[int]:
    root = cfg.data_dir / "partitions"
    return sorted(int(p.name[1:]) for p in root.iterdir() if p.name.startswith("p")) if root.exists() else []


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


def rebuild(cfg: Config, partition: int, from_snapshot: bool = False) -> tuple[int, float]:
    """Delete the partition's store and replay its topic up to the current end. (records, seconds)

    From the start of the topic, or from the newest snapshot and the records after it.
    """
    path = store_path(cfg, partition)
    shutil.rmtree(path, ignore_errors=True)
    if from_snapshot:
        snapshots = open_snapshots(cfg.snapshot_location, cfg.snapshot_retain)
        if restore_if_newer(snapshots, partition, path, -1) is None:
            raise SnapshotMissing(f"partition {partition}: no snapshot in {cfg.snapshot_location}")
    return catch_up(cfg, partition)


def rebuild_many(cfg: Config, partitions: list[int], from_snapshot: bool = False,
                 jobs: int | None = None) -> tuple[dict[int, tuple[int, float]], float]:
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
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {p: pool.submit(rebuild, cfg, p, from_snapshot) for p in partitions}
        results = {p: f.result() for p, f in futures.items()}
    return results, time.perf_counter() - started


class SnapshotMissing(RuntimeError):
    """A rebuild from a snapshot found none."""


class LogTruncated(RuntimeError):
    """The log no longer holds the records a partition's state needs, and no snapshot covers the gap."""


def low_watermark(cfg: Config, partition: int) -> int:
    """The first offset the log still holds for the partition (above 0 once retention deleted some)."""
    consumer = new_consumer(cfg)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                return consumer.get_watermark_offsets(TopicPartition(cfg.log_topic, partition), timeout=5)[0]
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        consumer.close()


def prepare_store(snapshots: SnapshotStore, partition: int, path: Path, log_start: int) -> int:
    """Make the local store the newest state available before a processor opens it: its applied offset.

    The newest snapshot replaces the local store if it is further ahead (less to replay). If the log
    has been trimmed past what the result needs, refuse rather than build a state with a hole in it.
    """
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


def catch_up(cfg: Config, partition: int) -> tuple[int, float]:
    """Apply whatever the topic holds beyond the store's applied offset, without acting. (records, seconds)"""
    store = RocksStore(store_path(cfg, partition))
    count = log_partitions(cfg)
    consumer = new_consumer(cfg, **{"fetch.wait.max.ms": 100})
    started = time.perf_counter()
    applied = 0
    try:
        end = high_watermark(consumer, cfg.log_topic, partition)
        position = applied_offset(store) + 1
        consumer.assign([TopicPartition(cfg.log_topic, partition, position or OFFSET_BEGINNING)])
        while position < end:
            msgs = [m for m in next_batch(consumer, 5000, 1.0) if m.error() is None]
            if not msgs:
                continue
            records, _ = decode(msgs)
            tx = Transaction(store)
            apply_batch(tx, partition, count, records)
            tx.commit(msgs[-1].offset())
            position = msgs[-1].offset() + 1
            applied += len(msgs)
    finally:
        consumer.close()
        store.close()
    return applied, time.perf_counter() - started
