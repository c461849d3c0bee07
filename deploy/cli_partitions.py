"""``reprise partitions``: digest, rebuild, snapshot and trim the log of local partition stores.

These work on the stores under ``--home`` with the processor that owns them stopped (RocksDB
allows one process per store) and the broker running. A running processor snapshots on its own
schedule, or on ``POST /partitions/snapshot`` of its admin API.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace

from reprise.deploy import cli_output
from reprise.engine import gc_policy
from reprise.engine.config import Config


def add_parser(sub: argparse._SubParsersAction, common: Callable[[argparse.ArgumentParser], None],
               config: Callable[[argparse.Namespace], Config]) -> None:
    p = sub.add_parser("partitions", help="digest, rebuild, snapshot local partition stores; trim the log")
    p.add_argument("action", choices=["digest", "rebuild", "snapshot", "snapshots", "trim-log"])
    p.add_argument("--all", action="store_true", help="with rebuild or snapshot: every partition")
    p.add_argument("--partition", type=int, help="with rebuild or snapshot: this partition")
    p.add_argument("--jobs", type=int, help="with rebuild --all: partitions rebuilt at once (default: the CPU count)")
    p.add_argument("--from-snapshot", action="store_true",
                   help="with rebuild: start from the newest snapshot instead of the start of the topic")
    p.add_argument("--no-changelog", action="store_true",
                   help="with rebuild: replay every record through apply, ignoring the changelog's deltas")
    p.add_argument("--no-catch-up", action="store_true",
                   help="with digest or snapshot: use the store as it is, without first applying the rest of "
                        "the topic")
    cli_output.add_flag(p)  # digest and snapshots
    common(p)
    p.set_defaults(fn=lambda args: cmd_partitions(args, config(args)))


def _targets(args: argparse.Namespace, cfg: Config) -> list[int]:
    from reprise.engine.kafka import log_partitions

    if args.all:
        return list(range(log_partitions(cfg)))
    return [args.partition] if args.partition is not None else []


def cmd_partitions(args: argparse.Namespace, cfg: Config) -> int:
    """Exits as docs/cli.md says: 3 without a broker, 6 with a store a running processor holds."""
    from reprise.deploy.cli_errors import KAFKA_UNREACHABLE, CliError
    from reprise.engine.kafka import unreachable
    from reprise.partitions.state.log_apply import LogTruncated
    from reprise.partitions.state.log_match import StoreAheadOfLog
    from reprise.partitions.state.rebuild import SnapshotMissing

    local_only = args.action in ("digest", "snapshot") and args.no_catch_up  # the store as it is: no broker
    why = None if local_only else unreachable(cfg)
    if why is not None:
        raise CliError(KAFKA_UNREACHABLE, why)
    try:
        return _run(args, cfg)
    except (SnapshotMissing, LogTruncated, StoreAheadOfLog) as e:
        print(f"reprise: {e}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, cfg: Config) -> int:
    from reprise.partitions.state.rebuild import catch_up, digest, rebuild_many
    from reprise.partitions.state.rocks_store import bound_memtables
    from reprise.partitions.state.store_files import local_partitions

    bound_memtables(cfg.store_memtable_mb << 20)  # as the engine's stores: before any store opens
    if args.action == "digest":
        digests = []
        for p in local_partitions(cfg):
            if not args.no_catch_up:  # the state the whole log implies, not where a stop left it
                catch_up(cfg, p)
            digests.append({"partition": p, "digest": digest(cfg, p)})
        lines = [f"partition {d['partition']} digest {d['digest']}" for d in digests]
        return _emit(args, {"partitions": digests}, lines)
    if args.action == "snapshots":
        return _list_snapshots(args, cfg)
    if args.action == "trim-log":
        return _trim_log(cfg)
    targets = _targets(args, cfg)
    if not targets:
        print(f"reprise: {args.action} needs --all or --partition N", file=sys.stderr)
        return 2
    if args.action == "snapshot":
        for p in targets:
            _snapshot(cfg, p, catch_up_first=not args.no_catch_up)
        return 0
    if args.no_changelog:
        cfg = replace(cfg, changelog=False)
    gc_policy.settle(cfg.gc_gen0_threshold)  # a batch job: collect as a started engine does
    results, wall = rebuild_many(cfg, targets, args.from_snapshot, args.jobs)
    for p, (records, seconds, from_changelog) in sorted(results.items()):
        rate = records / seconds if seconds > 0 else 0.0
        print(f"partition {p} rebuilt from {records} records ({from_changelog} of them by the changelog's deltas) "
              f"in {seconds:.2f} s ({rate:,.0f} records/s)")
    if len(results) > 1:
        total = sum(r.records for r in results.values())
        print(f"{len(results)} partitions, {total} records in {wall:.2f} s ({total / wall:,.0f} records/s)")
    return 0


def _snapshot(cfg: Config, partition: int, catch_up_first: bool) -> None:
    from reprise.partitions.state.rebuild import catch_up
    from reprise.partitions.state.rocks_store import RocksStore
    from reprise.partitions.state.snapshots import open_snapshots
    from reprise.partitions.state.store_files import store_path

    if catch_up_first:
        catch_up(cfg, partition)
    store = RocksStore(store_path(cfg, partition))
    try:
        snapshots = open_snapshots(cfg.snapshot_location, cfg.snapshot_retain)
        snap = snapshots.take(partition, store, cfg.data_dir / "scratch")
    finally:
        store.close()
    print(f"partition {partition} snapshot at offset {snap.applied_offset}: {snap.location} ({snap.size_bytes} bytes)")


def _list_snapshots(args: argparse.Namespace, cfg: Config) -> int:
    from reprise.engine.kafka import log_partitions
    from reprise.partitions.state.snapshots import open_snapshots

    snapshots = open_snapshots(cfg.snapshot_location, cfg.snapshot_retain)
    found = [{"partition": p, "applied_offset": s.applied_offset, "size_bytes": s.size_bytes,
              "location": str(s.location)} for p in range(log_partitions(cfg)) for s in snapshots.list(p)]
    return _emit(args, {"snapshots": found}, [f"partition {s['partition']} offset {s['applied_offset']} bytes "
                                              f"{s['size_bytes']} at {s['location']}" for s in found])


def _emit(args: argparse.Namespace, data: object, lines: list[str]) -> int:
    """JSON, or the lines scripts of earlier versions read (one per partition or snapshot)."""
    if cli_output.wants_json(args):
        cli_output.print_json(data)
    else:
        for line in lines:
            print(line)
    return 0


def _trim_log(cfg: Config) -> int:
    """Delete log records every retained snapshot already covers: below the oldest one's offset + 1; and
    the changelog's deltas that end before it."""
    from confluent_kafka import TopicPartition

    from reprise.engine.kafka import log_partitions, new_admin
    from reprise.partitions.state.changelog import first_needed
    from reprise.partitions.state.snapshots import open_snapshots

    snapshots = open_snapshots(cfg.snapshot_location, cfg.snapshot_retain)
    cut = []
    for p in range(log_partitions(cfg)):
        kept = snapshots.list(p)
        if not kept:
            print(f"partition {p}: no snapshot, log kept whole")
            continue
        cut.append(TopicPartition(cfg.log_topic, p, kept[0].applied_offset + 1))
    if not cut:
        return 0
    admin = new_admin(cfg)
    for tp, fut in admin.delete_records(cut).items():
        print(f"partition {tp.partition}: log now starts at offset {fut.result(30).low_watermark}")
    if cfg.changelog and cfg.changelog_topic in admin.list_topics(timeout=30).topics:
        # deltas that end before the oldest snapshot: no restore starting at it or later reads them
        deltas = [TopicPartition(cfg.changelog_topic, tp.partition, first_needed(cfg, tp.partition, tp.offset - 1))
                  for tp in cut]
        for tp, fut in admin.delete_records([tp for tp in deltas if tp.offset > 0]).items():
            print(f"partition {tp.partition}: changelog now starts at offset {fut.result(30).low_watermark}")
    return 0
