"""Rebuilding a partition's store from its topic, and a digest to prove the result is the same.

The log is the truth: deleting a partition's RocksDB and replaying its
topic from the start through apply() must give the same bytes. ``digest`` hashes every key and value
of a store in key order; ``rebuild`` replays without acting (no leader actions), as fast as apply goes.
"""

from __future__ import annotations

import hashlib
import time
from typing import NamedTuple

from reprise.engine import gc_policy
from reprise.engine.config import Config
from reprise.engine.faults import crash_point
from reprise.engine.kafka import topic_partitions
from reprise.partitions.state.changelog import ChangelogWriter, restore
from reprise.partitions.state.durable_files import remove_dir
from reprise.partitions.state.log_apply import LogReplay, log_watermarks
from reprise.partitions.state.log_match import check_store_matches_log
from reprise.partitions.state.rocks_store import RocksStore, bound_memtables
from reprise.partitions.state.snapshots import open_snapshots, restore_if_newer
from reprise.partitions.state.store_files import store_path


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


