"""The partition processor: the Kafka adapter that runs the apply loop and wires the leader's parts.

Commit protocol, per consumed batch and partition:
1. decode the batch's records (a record that does not decode is skipped and counted, never fatal);
2. apply them into one Transaction and commit it with the last offset in one WriteBatch
   (partitions/state/log_apply.py);
3. if this process leads the partition, hand the returned actions to the event loop, which runs
   attempts, timers and outbox deliveries (partitions/leader/leader_actions.py).
On start each partition resumes at its applied offset + 1 and claims leadership by appending a
LeaderEpoch record (partitions/leader/ownership.py, leadership.py); it acts only once that record has
been applied (so it has caught up with the log), starting with a scan for work left unfinished
(running attempts, timers, unshipped outbox).

Execution contexts: the apply loop (its own thread: consume, apply, ownership and leadership), the
event loop (leader actions, retention sweeps) and the snapshot thread (partitions/state/snapshot_schedule.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any, cast

from confluent_kafka import Consumer, Producer, TopicPartition

from reprise.engine.clock import now_ms
from reprise.engine.cluster_members import processor_client_id
from reprise.engine.config import Config
from reprise.engine.consumed import ConsumedRecord
from reprise.engine.critical import critical_thread
from reprise.engine.dead_letters import produce_dead_letter
from reprise.engine.hot_path import HOT_PATH
from reprise.engine.kafka import (
    log_partitions,
    new_consumer,
    next_batch,
    produce_record,
    producer_config,
    topic_partitions,
)
from reprise.engine.kafka_properties import settings_for
from reprise.engine.kafka_stats import KAFKA_STATS
from reprise.engine.local_replies import LocalReplies
from reprise.engine.produce_burst import ProduceBurst
from reprise.engine.registry import Registry
from reprise.partitions import metrics
from reprise.partitions.core.errors import Rejection
from reprise.partitions.core.tables import TablesView
from reprise.partitions.core.transaction import Transaction, applied_offset
from reprise.partitions.invoker.embedded import EmbeddedApp
from reprise.partitions.invoker.invoker import Invoker
from reprise.partitions.leader.attempt_guard import AttemptGuard
from reprise.partitions.leader.claims import Claim
from reprise.partitions.leader.leader_actions import LeaderActions
from reprise.partitions.leader.leader_records import LeaderRecords
from reprise.partitions.leader.leadership import Leadership
from reprise.partitions.leader.ownership import Ownership, readiness
from reprise.partitions.leader.partition_gauges import PartitionGauges
from reprise.partitions.leader.retention_sweeps import RetentionSweeps
from reprise.partitions.leader.shipper import OutboxShipper
from reprise.partitions.leader.timers import TimerService
from reprise.partitions.state.changelog import ChangelogWriter
from reprise.partitions.state.log_apply import apply_messages
from reprise.partitions.state.snapshot_schedule import SnapshotSchedule
from reprise.partitions.state.snapshots import Snapshot, open_snapshots
from reprise.schemas.records import LeaderEpoch

log = logging.getLogger(__name__)


def processor_producer(cfg: Config) -> Producer:
    """The producer a processor writes its records with. Why a function: an idempotent producer's
    first record waits until it has a producer id (~0.5 s after it is made, measured), and a
    processor's first record is its leadership claim; a process that makes it first thing, before
    creating topics and reading the registry, serves sooner after a restart."""
    # Effects, timers and outbox records must never be given up on: no delivery timeout.
    return Producer(producer_config(cfg, **{"message.timeout.ms": 0},
                                    **KAFKA_STATS.settings(cfg, "processor-producer")))


class PartitionProcessor:
    """Applies and leads a set of partitions: all of them (``reprise dev``), a fixed list, or, with
    ``group=True``, whatever the ``<namespace>.processors`` consumer group assigns (``reprise processor``)."""

    def __init__(self, cfg: Config, registry: Registry, partitions: list[int] | None = None,
                 owner: str | None = None, group: bool = False, producer: Producer | None = None,
                 local_replies: LocalReplies | None = None) -> None:
        self.cfg = cfg
        self.local_replies = local_replies  # ingresses in this process: replies to them skip Kafka
        self._producer = producer  # made early (processor_producer) so that its first claim need not wait
        self.registry = registry
        metrics.label_services_of(registry)
        self.owner = owner or f"proc-{uuid.uuid4().hex[:12]}"
        self.partition_count = log_partitions(cfg)
        self.group = group
        self.partitions = [] if group else partitions if partitions is not None else list(range(self.partition_count))
        self.snapshots = open_snapshots(cfg.snapshot_location, cfg.snapshot_retain)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.leader_ready = asyncio.Event()

    # wiring ----------------------------------------------------------------------------------
    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self.producer = self._producer or processor_producer(self.cfg)
        self.embedded = EmbeddedApp(self.cfg.embedded_app, self.cfg.embedded_threads) if self.cfg.embedded_app else None
        # What the loop produces (effects, timers, outbox) goes out per loop turn: engine/produce_burst.py
        self.burst = ProduceBurst(self.producer, loop)
        self.leadership = Leadership(self.owner, self._append_claim, self._step_down_soon, now_ms)
        self.leading, self.claimed = self.leadership.leading, self.leadership.claimed
        self.changelog = self._changelog_writer()
        self.ownership = Ownership(self.cfg, self.snapshots, self.changelog, self.leadership, self._release)
        self.stores = self.ownership.stores  # the partitions this process owns now
        self.records = LeaderRecords(self.cfg.log_topic, self.burst, loop, self.leading, self.claimed)
        self.invoker = Invoker(self.cfg, self.registry, self.records.effects,
                               max_concurrency=self.cfg.invoker_concurrency, embedded=self.embedded)
        self.attempts = self.records.attempts = AttemptGuard(self.invoker, loop, self.stores, self.leading,
                                                             self.claimed, self.cfg.attempt_watchdog_s)
        self.attempts.start()
        self.timers = self.records.timers = TimerService(self.records.timer_fired)
        self.shipper = OutboxShipper(self.cfg, self.burst, loop, self.records.outbox_shipped,
                                     report_interval_s=self.cfg.outbox_report_ms / 1000,
                                     local_replies=self.local_replies)
        # Fault injection for tests: behave as if the process died after committing a batch and before
        # shipping its outbox (REPRISE_FAULT_HOLD_OUTBOX=1). Never set in production.
        self.actions = LeaderActions(self.invoker, self.timers, self.shipper, self.stores, self.leadership,
                                     self.leader_ready, loop,
                                     hold_outbox=os.environ.get("REPRISE_FAULT_HOLD_OUTBOX") == "1")
        self.snapshot_schedule = SnapshotSchedule(self.snapshots, self.stores, self.ownership.lock,
                                                  self.cfg.data_dir / "scratch")
        consumer = self._consumer()
        if self.group:
            consumer.subscribe([self.cfg.log_topic], on_assign=self.ownership.on_assign,
                               on_revoke=self.ownership.on_revoke, on_lost=self.ownership.on_revoke)
            self.leader_ready.set()  # a member leads what it is given, when it is given it
        else:
            consumer.assign(self.ownership.gain_all(self.partitions))
        self._spawn(lambda: self._consume(consumer), "apply")
        if self.cfg.snapshot_interval_s > 0:
            self._spawn(lambda: self.snapshot_schedule.run(self._stop, self.cfg.snapshot_interval_s,
                                                           lambda: self.leading), "snapshots")
        PartitionGauges(self.stores, self.ownership.lock, self.changelog, self.cfg.metrics_sample_interval_s,
                        self._stop).start()
        if self.cfg.completed_retention_s > 0:
            RetentionSweeps(loop, self.cfg.retention_sweep_interval_s, self.cfg.completed_retention_s, self.stores,
                            self.ownership.lock, self.leading, self.records.retention_sweep, self._stop,
                            now_ms).start()

    def _consumer(self) -> Consumer:
        settings: dict[str, Any] = {
            "group.id": f"{self.cfg.namespace}.processors", "session.timeout.ms": self.cfg.group_session_timeout_ms,
            "heartbeat.interval.ms": max(500, self.cfg.group_session_timeout_ms // 6),
            "partition.assignment.strategy": "cooperative-sticky"}
        if self.group and self.cfg.instance_id:
            settings["group.instance.id"] = self.cfg.instance_id
        if self.group:  # how other processes find this one's admin API (engine/cluster_members.py)
            settings["client.id"] = processor_client_id(
                self.cfg, settings_for(self.cfg.kafka_config, "consumer").get("client.id"))
        consumer = new_consumer(self.cfg, **settings, **KAFKA_STATS.settings(self.cfg, "processor-consumer"))
        # The log's metadata in the consumer's cache before it is assigned: else a fetch can wait for
        # librdkafka's once-a-second scan of unknown topics (restarts took ~0.9 s longer, measured)
        consumer.list_topics(self.cfg.log_topic, timeout=10)
        return consumer

    def _changelog_writer(self) -> ChangelogWriter | None:
        if not self.cfg.changelog:
            return None
        if topic_partitions(self.cfg, self.cfg.changelog_topic) < self.partition_count:
            log.warning("%s is missing or has fewer partitions than %s: no changelog is written (restores "
                        "replay the log); recreate it with as many partitions", self.cfg.changelog_topic,
                        self.cfg.log_topic)
            return None
        return ChangelogWriter(self.cfg, self.producer, max_delay_s=self.cfg.changelog_max_delay_ms / 1000)

    def _append_claim(self, partition: int, claim: LeaderEpoch) -> None:
        produce_record(self.producer, self.cfg.log_topic, partition, "LeaderEpoch", claim)

    def _step_down_soon(self, partition: int, holder: Claim) -> None:
        """From the apply thread: the event loop stops the partition's actions at once."""
        self._loop.call_soon_threadsafe(self.actions.step_down, partition, holder)

    def _release(self, partition: int) -> None:
        """From the apply thread: the event loop stops the partition's actions; wait for it."""
        if self._loop is not None and not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self.actions.release(partition), self._loop).result(30)

    async def stop(self) -> None:
        self._stop.set()
        for t in self._threads:  # the apply thread gives its partitions up (and the group) on its way out
            await asyncio.get_running_loop().run_in_executor(None, t.join, 15)
        self.attempts.close()
        await self.invoker.close()
        if self.embedded is not None:
            self.embedded.close()
        self.timers.close()
        self.burst.flush()
        self.producer.flush(5)  # what is still queued, and the delivery reports the apply thread left
        self.ownership.close()

    def _spawn(self, fn: Callable[[], None], name: str) -> None:
        """A thread this processor cannot do without: if it fails, the process ends (engine/critical.py)."""
        self._threads.append(critical_thread(fn, name))

    # what the admin API and health checks ask ------------------------------------------------
    def ready(self) -> bool:
        """Every owned partition is caught up and led by this process."""
        return self.readiness() is None

    def readiness(self) -> str | None:
        """None when this process owns its partitions and has caught up with each; else why not."""
        return readiness(self.group, self.ownership.assigned, self.stores, self.leading)

    def owned(self) -> list[dict[str, Any]]:
        rows = []
        for p, store in sorted(self.stores.items()):
            snap = self.snapshots.latest(p)
            rows.append({"partition": p, "leading": p in self.leading, "epoch": self.claimed.get(p),
                         "applied_offset": applied_offset(store),
                         "snapshot_offset": snap.applied_offset if snap else None})
        return rows

    def snapshot(self, partition: int) -> dict[str, Any] | None:
        snap = self.take_snapshot(partition)
        return None if snap is None else {"partition": partition, "applied_offset": snap.applied_offset,
                                          "location": snap.location, "size_bytes": snap.size_bytes}

    def take_snapshot(self, partition: int) -> Snapshot | None:
        """Snapshot one owned partition now (None if this process does not own it)."""
        return self.snapshot_schedule.take(partition)

    # the apply loop (its own thread) -----------------------------------------------------------
    def _consume(self, consumer: Consumer) -> None:
        last_commit = time.monotonic()
        hold = os.environ.get("REPRISE_FAULT_HOLD_APPLY")  # tests only: _hold_for_test
        _hold_for_test(hold)
        try:
            while not self._stop.is_set():
                # an outbox entry waiting for the ack before it (partitions/leader/outbox_lanes.py): serve acks soon
                wait_s = 0.002 if self.shipper.backlogged() else 0.1
                msgs = cast(list[ConsumedRecord], next_batch(consumer, 1000, wait_s))  # errors left out below
                if msgs:
                    HOT_PATH.mark()  # records to apply: SQL queries are paced (engine/hot_path.py)
                if hold:
                    _hold_for_test(hold)
                by_partition: dict[int, list[ConsumedRecord]] = defaultdict(list)
                for m in msgs:
                    if m.error() is None:
                        by_partition[m.partition()].append(m)
                for p, batch in by_partition.items():
                    if p in self.stores:  # else: revoked while this batch was in flight
                        self._apply_batch(p, batch)
                if self.changelog is not None:
                    self.changelog.tick()
                # Delivery reports (the shipper's acks) are served here, not on a thread of their own:
                # a thread woken per report cost ~40 µs of CPU a wake-up on a 2-core VM (docs/benchmarks.md)
                self.producer.poll(0)
                if time.monotonic() - last_commit > 1.0:  # group offsets: a lag signal only
                    last_commit = time.monotonic()
                    self._report(consumer)
                    offsets = [TopicPartition(self.cfg.log_topic, p, o + 1) for p, o in (
                        (p, applied_offset(s)) for p, s in self.stores.items()) if o >= 0]
                    if offsets:
                        consumer.commit(offsets=offsets, asynchronous=True)
        except Exception:
            log.exception("apply loop crashed")
            raise
        finally:
            consumer.close()  # in a group: revokes (so releases) every partition, then leaves
            self.ownership.lose_all()

    def _apply_batch(self, partition: int, msgs: list[ConsumedRecord]) -> None:
        started = time.perf_counter()
        store = self.stores[partition]
        result, records, undecodable = apply_messages(
            store, partition, self.partition_count, msgs, self.changelog,
            on_retry=lambda e, n: log.warning("partition %d: %s; retrying the batch (%d)", partition, e, n))
        for m, reason in undecodable:
            self._dead_letter(m, "unknown", Rejection.UNDECODABLE, reason)
        if result.rejected:
            by_offset = {m.offset(): m for m in msgs}
            for r in result.rejected:
                self._dead_letter(by_offset[r.offset], r.kind, r.reason, r.message)
        metrics.records_applied(partition, len(records))
        metrics.APPLY_SECONDS.observe(time.perf_counter() - started)
        if partition in self.leading:  # a follower catching up replays completions its leader counted
            metrics.INVOCATIONS_COMPLETED.count(result.completed)
        for reason in result.dropped:
            log.debug("partition %d: %s", partition, reason)
        became_leader = self.leadership.after_batch(partition, store, records)
        if partition in self.leading and (became_leader or result.actions):  # else: no loop wake-up for nothing
            self._loop.call_soon_threadsafe(self.actions.after_batch, partition, became_leader, result.actions)

    def _report(self, consumer: Consumer) -> None:
        metrics.LEADING.set(len(self.leading))
        metrics.PARTITIONS_OWNED.set(len(self.stores))
        for p, store in self.stores.items():
            tables = TablesView(Transaction(store))
            metrics.observe_tables(p, tables.invocations.counts(), tables.objects.depth())
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(self.cfg.log_topic, p), cached=True)
            except Exception:  # noqa: BLE001 - a metric must never stop the apply loop
                continue
            if high >= 0:
                metrics.CONSUMER_LAG.labels(str(p)).set(max(0, high - applied_offset(store) - 1))

    def _dead_letter(self, msg: ConsumedRecord, kind: str, rejection: Rejection, reason: str) -> None:
        """A record the partition cannot use goes to the dead-letter topic with the reason; the
        partition moves on. Only the leader writes it, so a replay does not write it again."""
        metrics.RECORDS_REJECTED.labels(str(msg.partition()), kind, rejection.value).inc()
        log.warning("partition %d offset %d: %s rejected (%s), dead-lettered: %s", msg.partition(), msg.offset(),
                    kind, rejection.value, reason[:500])
        if msg.partition() not in self.leading:
            return
        headers = list(msg.headers() or []) + [
            ("reprise-dead-letter-reason", reason[:1000].encode()), ("reprise-rejection", rejection.value.encode()),
            ("reprise-source", f"{msg.topic()}/{msg.partition()}/{msg.offset()}".encode())]
        produce_dead_letter(self.producer, self.cfg.dead_letter_topic, msg.key(), msg.value(), headers)


def _hold_for_test(hold: str | None) -> None:
    """Fault injection for tests: the apply loop waits while the file REPRISE_FAULT_HOLD_APPLY names
    exists, at its start (a processor that has not caught up yet) and before applying each batch
    (a woken process that acts before it reads the log). Never set in production."""
    while hold and os.path.exists(hold):
        time.sleep(0.1)
