"""The partition processor: the Kafka and RocksDB adapter around apply().

Commit protocol, per consumed batch and partition:
1. decode the batch's records (a record that does not decode is skipped and counted, never fatal);
2. apply them into one Transaction and commit it with the last offset in one WriteBatch;
3. if this process leads the partition, hand the returned actions to the event loop, which runs
   attempts, timers and outbox deliveries.
On start each partition resumes at its applied offset + 1 and claims leadership by appending a
LeaderEpoch record; it acts only once that record has been applied (so it has caught up with the
log), starting with a scan for work left unfinished (running attempts, timers, unshipped outbox).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Message, Producer, TopicPartition

from reprise.engine.clock import now_ms
from reprise.engine.cluster_members import processor_client_id
from reprise.engine.config import Config
from reprise.engine.critical import critical_thread
from reprise.engine.dead_letters import produce_dead_letter
from reprise.engine.kafka import (
    log_partitions,
    new_consumer,
    next_batch,
    produce_record,
    producer_config,
    topic_partitions,
)
from reprise.engine.local_replies import LocalReplies
from reprise.engine.produce_burst import ProduceBurst
from reprise.engine.registry import Registry
from reprise.partitions import metrics
from reprise.partitions.core.actions import (
    AbortAttempt,
    Action,
    RunAttempt,
    ScheduleTimer,
    ShipOutbox,
    StreamNotification,
)
from reprise.partitions.core.apply import LogRecord
from reprise.partitions.core.errors import Rejection
from reprise.partitions.core.tables import TablesView
from reprise.partitions.core.transaction import Transaction, applied_offset
from reprise.partitions.invoker.embedded import EmbeddedApp
from reprise.partitions.invoker.invoker import Invoker
from reprise.partitions.leader.attempt_guard import AttemptGuard
from reprise.partitions.leader.claims import Claim, Claims
from reprise.partitions.leader.leader_records import LeaderRecords
from reprise.partitions.leader.shipper import OutboxShipper
from reprise.partitions.leader.timers import TimerService
from reprise.partitions.state.changelog import ChangelogWriter, restore
from reprise.partitions.state.log_apply import LogReplay, apply_messages, log_watermarks
from reprise.partitions.state.log_match import check_store_matches_log_or_close
from reprise.partitions.state.rocks_store import RocksStore
from reprise.partitions.state.snapshots import Snapshot, open_snapshots
from reprise.partitions.state.store_files import prepare_store, store_path

log = logging.getLogger(__name__)


def processor_producer(cfg: Config) -> Producer:
    """The producer a processor writes its records with. Why a function: an idempotent producer's
    first record waits until it has a producer id (~0.5 s after it is made, measured), and a
    processor's first record is its leadership claim; a process that makes it first thing, before
    creating topics and reading the registry, serves sooner after a restart."""
    # Effects, timers and outbox records must never be given up on: no delivery timeout.
    return Producer(producer_config(cfg, **{"message.timeout.ms": 0}))


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
        self.owner = owner or f"proc-{uuid.uuid4().hex[:12]}"
        self.partition_count = log_partitions(cfg)
        self.group = group
        self.partitions = [] if group else partitions if partitions is not None else list(range(self.partition_count))
        self.stores: dict[int, RocksStore] = {}  # the partitions this process owns now
        self.claimed: dict[int, int] = {}  # partition -> epoch this process claimed
        self.claims = Claims(self.owner)  # when to lead, step down, claim again or yield (partitions/leader/claims.py)
        self.leading: set[int] = set()
        self._dropping: dict[int, asyncio.Task[None]] = {}  # a stepped-down partition's attempts being stopped
        self.snapshots = open_snapshots(cfg.snapshot_location, cfg.snapshot_retain)
        self._store_lock = threading.Lock()  # a snapshot never races a store being closed
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # Fault injection for tests: behave as if the process died after committing a batch and before
        # shipping its outbox (REPRISE_FAULT_HOLD_OUTBOX=1). Never set in production.
        self._hold_outbox = os.environ.get("REPRISE_FAULT_HOLD_OUTBOX") == "1"
        self.leader_ready = asyncio.Event()
        self._assigned = False  # a group member that has had its first assignment

    # lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.producer = self._producer or processor_producer(self.cfg)
        self.embedded = EmbeddedApp(self.cfg.embedded_app, self.cfg.embedded_threads) if self.cfg.embedded_app else None
        # What the loop produces (effects, timers, outbox) goes out per loop turn: engine/produce_burst.py
        self.burst = ProduceBurst(self.producer, self._loop)
        self.records = LeaderRecords(self.cfg.log_topic, self.burst, self._loop, self.leading, self.claimed)
        self.invoker = Invoker(self.cfg, self.registry, self.records.effects,
                               max_concurrency=self.cfg.invoker_concurrency, embedded=self.embedded)
        self.attempts = self.records.attempts = AttemptGuard(self.invoker, self._loop, self.stores, self.leading,
                                                             self.claimed, self.cfg.attempt_watchdog_s)
        self.attempts.start()
        self.timers = self.records.timers = TimerService(self.records.timer_fired)
        self.shipper = OutboxShipper(self.cfg, self.burst, self._loop, self.records.outbox_shipped,
                                     report_interval_s=self.cfg.outbox_report_ms / 1000,
                                     local_replies=self.local_replies)
        self.changelog = self._changelog_writer()
        consumer_settings = {
            "group.id": f"{self.cfg.namespace}.processors", "session.timeout.ms": self.cfg.group_session_timeout_ms,
            "heartbeat.interval.ms": max(500, self.cfg.group_session_timeout_ms // 6),
            "partition.assignment.strategy": "cooperative-sticky"}
        if self.group and self.cfg.instance_id:
            consumer_settings["group.instance.id"] = self.cfg.instance_id
        if self.group:  # how other processes find this one's admin API (engine/cluster_members.py)
            consumer_settings["client.id"] = processor_client_id(self.cfg)
        consumer = new_consumer(self.cfg, **consumer_settings)
        # The log's metadata in the consumer's cache before it is assigned: else a fetch can wait for
        # librdkafka's once-a-second scan of unknown topics (restarts took ~0.9 s longer, measured)
        consumer.list_topics(self.cfg.log_topic, timeout=10)
        if self.group:
            consumer.subscribe([self.cfg.log_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                               on_lost=self._on_revoke)
            self.leader_ready.set()  # a member leads what it is given, when it is given it
        else:
            consumer.assign(self._gain_all(self.partitions))
        self._spawn(lambda: self._consume(consumer), "apply")
        if self.cfg.snapshot_interval_s > 0:
            self._spawn(self._snapshot_periodically, "snapshots")
        if self.cfg.completed_retention_s > 0:
            self._loop.call_later(self.cfg.retention_sweep_interval_s, self._sweep_retention)

    def _changelog_writer(self) -> ChangelogWriter | None:
        if not self.cfg.changelog:
            return None
        if topic_partitions(self.cfg, self.cfg.changelog_topic) < self.partition_count:
            log.warning("%s is missing or has fewer partitions than %s: no changelog is written (restores "
                        "replay the log); recreate it with as many partitions", self.cfg.changelog_topic,
                        self.cfg.log_topic)
            return None
        return ChangelogWriter(self.cfg, self.producer, max_delay_s=self.cfg.changelog_max_delay_ms / 1000)

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
        with self._store_lock:
            for s in self.stores.values():
                s.close()
            self.stores.clear()

    def _spawn(self, fn: Any, name: str) -> None:
        """A thread this processor cannot do without: if it fails, the process ends (engine/critical.py)."""
        self._threads.append(critical_thread(fn, name))

    # ownership (apply thread) ------------------------------------------------------------------
    def _gain_all(self, partitions: list[int]) -> list[TopicPartition]:
        """``_gain`` for several partitions at once: each mostly waits on the broker (its watermarks,
        the record at its store's offset), and partitions share nothing until they are claimed."""
        if len(partitions) <= 1:
            return [self._gain(p) for p in partitions]
        with ThreadPoolExecutor(min(len(partitions), 8), thread_name_prefix="gain") as pool:
            return list(pool.map(self._gain, partitions))

    def _gain(self, partition: int) -> TopicPartition:
        """Open the partition's store (from a snapshot if that is newer), claim it, say where to resume."""
        path = store_path(self.cfg, partition)
        low, end = log_watermarks(self.cfg, partition)
        offset = prepare_store(self.snapshots, partition, path, low)
        store = RocksStore(path)
        # a store ahead of its log (recreated, or its tail lost) is refused, not resumed on
        check_store_matches_log_or_close(self.cfg, partition, store, path, low, end)
        if self.changelog is not None and end - offset - 1 >= max(1, self.cfg.changelog_restore_behind):
            offset = self._restore(partition, store)  # far behind: restoring costs less than replaying
        with self._store_lock:
            self.stores[partition] = store
        metrics.observe_snapshot(partition, self.snapshots.latest(partition))
        log.info("partition %d: owned; resumes after offset %d", partition, offset)
        tables = TablesView(Transaction(store))
        held = Claim(tables.leadership.epoch(), tables.leadership.owner() or "")
        self._claim(partition, self.claims.first(partition, held.epoch), held)
        return TopicPartition(self.cfg.log_topic, partition, offset + 1 if offset >= 0 else OFFSET_BEGINNING)

    def _restore(self, partition: int, store: RocksStore) -> int:
        """A store far behind its log (a new node, a lost disk, an old snapshot) is brought forward
        with the changelog's deltas first: writing them back is ~10x faster than applying records."""
        with LogReplay(self.cfg, partition, store) as replay:
            restored = restore(self.cfg, partition, store, replay.up_to)
        log.info("partition %d: restored %d records' writes from %d changelog deltas (%d replayed in its holes) "
                 "in %.2f s", partition, restored.covered, restored.deltas, restored.replayed, restored.seconds)
        # deltas the log does not imply (another log's) are refused too
        check_store_matches_log_or_close(self.cfg, partition, store, store_path(self.cfg, partition),
                                         *log_watermarks(self.cfg, partition), restored=True)
        return applied_offset(store)

    def _lose(self, partition: int) -> None:
        """Stop acting for the partition at once: attempts, timers and outbox deliveries end here."""
        self.leading.discard(partition)
        self.claimed.pop(partition, None)
        self.claims.forget(partition)
        if self.changelog is not None:
            self.changelog.flush(partition)  # the deltas of what this process applied stay valid
        if self._loop is not None and not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._release(partition), self._loop).result(30)
        with self._store_lock:
            store = self.stores.pop(partition, None)
            if store is not None:
                store.close()
        metrics.forget_partition(partition)
        log.info("partition %d: no longer owned", partition)

    async def _release(self, partition: int) -> None:
        self.timers.drop_partition(partition)
        self.shipper.drop_partition(partition)
        await self.invoker.drop_partition(partition)

    def _on_assign(self, consumer: Any, assigned: list[TopicPartition]) -> None:
        try:
            consumer.incremental_assign(self._gain_all([tp.partition for tp in assigned]))
            self._assigned = True  # (an empty assignment too: more processors than partitions)
        except Exception:
            log.exception("could not take over partitions %s", [tp.partition for tp in assigned])
            raise

    def _on_revoke(self, consumer: Any, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self._lose(tp.partition)
        consumer.incremental_unassign(revoked)

    def ready(self) -> bool:
        """Every owned partition is caught up and led by this process."""
        return self.readiness() is None

    def readiness(self) -> str | None:
        """None when this process owns its partitions and has caught up with each (its leadership
        claim, appended at the log's end when it took the partition, was applied); else why not."""
        if self.group and not self._assigned:
            return "no partitions assigned by the consumer group yet"
        behind = sorted(set(self.stores) - self.leading)
        return f"catching up on partitions {behind}" if behind else None

    # leadership ------------------------------------------------------------------------------
    def _claim(self, partition: int, epoch: int, seen: Claim) -> None:
        """Claim above ``seen``, the claim holding in our store: its owner yields to us at once."""
        self.claimed[partition] = epoch
        produce_record(self.producer, self.cfg.log_topic, partition, "LeaderEpoch", {
            "partition": partition, "epoch": epoch, "owner": self.owner, "timestamp_ms": now_ms(),
            "seen_epoch": seen.epoch, "seen_owner": seen.owner})

    def _check_leadership(self, partition: int, batch: list[LogRecord]) -> bool:
        """After a batch with claims: lead, step down, claim again or yield (partitions/leader/claims.py).

        A claim holds when the store's current (epoch, owner) is (our claim, us): an epoch alone
        would not do, since two processors may claim the same number.
        """
        values = [r.value for r in batch if r.kind == "LeaderEpoch"]
        if not values:
            return False
        claims = [Claim(v["epoch"], v["owner"]) for v in values]
        seen = {Claim(v["epoch"], v["owner"]): Claim(v["seen_epoch"], v["seen_owner"])
                for v in values if v.get("seen_owner")}  # v2 records name the claim they saw holding
        tables = TablesView(Transaction(self.stores[partition]))
        holder = Claim(tables.leadership.epoch(), tables.leadership.owner() or "")
        decision = self.claims.after_batch(partition, claims, holder, partition in self.leading, seen)
        if decision.step_down:
            self.leading.discard(partition)
            self._loop.call_soon_threadsafe(self._step_down, partition, holder)
        if decision.yielded_to is not None:
            log.warning("partition %d: %s took it over from our claim (or claimed again above it): a live "
                        "processor; yielding to it", partition, decision.yielded_to)
        if decision.claim is not None:
            log.warning("partition %d: epoch %d of %s is not ours; claiming again at %d", partition, holder.epoch,
                        holder.owner, decision.claim)
            self._claim(partition, decision.claim, holder)
        if decision.lead:
            self.leading.add(partition)
        return decision.lead

    def _step_down(self, partition: int, holder: Claim) -> None:
        """Stop acting at once: timers, outbox, and the attempts, whose effects carry our old epoch
        (apply() ignores them now) and which a later leadership of ours must be able to start again."""
        log.warning("partition %d: epoch %d of %s is newer than ours; stepping down", partition, holder.epoch,
                    holder.owner)
        self.timers.drop_partition(partition)
        self.shipper.drop_partition(partition)
        self._dropping[partition] = self._loop.create_task(self.invoker.drop_partition(partition))

    def _become_leader(self, partition: int) -> None:
        """Resume everything left unfinished: running attempts, pending timers, unshipped outbox."""
        tables = TablesView(Transaction(self.stores[partition]))
        actions: list[Action] = []
        for inv in tables.invocations.invoked_ids():
            row = tables.invocations.get(inv)
            if row is not None:
                actions.append(RunAttempt(inv, row["attempt"]))
        actions.extend(ShipOutbox(seq) for seq in tables.outbox.pending())
        self.timers.start_partition(partition, self.stores[partition])
        log.info("partition %d: leader at epoch %d; resuming %d actions", partition,
                 self.claimed[partition], len(actions))
        self._perform(partition, actions)
        if self.leading.issuperset(self.stores):
            self.leader_ready.set()

    # the apply loop (its own thread) -----------------------------------------------------------
    def _consume(self, consumer: Any) -> None:
        last_commit = time.monotonic()
        hold = os.environ.get("REPRISE_FAULT_HOLD_APPLY")  # tests only: _hold_for_test
        _hold_for_test(hold)
        try:
            while not self._stop.is_set():
                # an outbox entry waiting for the ack before it (partitions/leader/outbox_lanes.py): serve acks soon
                msgs = next_batch(consumer, 1000, 0.002 if self.shipper.backlogged() else 0.1)
                if hold:
                    _hold_for_test(hold)
                by_partition: dict[int, list[Message]] = defaultdict(list)
                for m in msgs:
                    if m.error() is None:
                        by_partition[m.partition()].append(m)
                for p, batch in by_partition.items():
                    if p in self.stores:  # else: revoked while this batch was in flight
                        self._apply_batch(p, batch)
                if self.changelog is not None:
                    self.changelog.tick()
                # Delivery reports (the shipper's acks) are served here, not on a thread of their own:
                # a thread woken per report cost ~40 µs of CPU a wake-up on this VM (docs/benchmarks.md)
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
            for p in list(self.stores):
                self._lose(p)

    def _report(self, consumer: Any) -> None:
        metrics.LEADING.set(len(self.leading))
        for p, store in self.stores.items():
            tables = TablesView(Transaction(store))
            metrics.observe_tables(p, tables.invocations.counts(), tables.objects.depth())
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(self.cfg.log_topic, p), cached=True)
            except Exception:  # noqa: BLE001 - a metric must never stop the apply loop
                continue
            if high >= 0:
                metrics.CONSUMER_LAG.labels(str(p)).set(max(0, high - applied_offset(store) - 1))

    # snapshots (their own thread) ----------------------------------------------------------------
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
        with self._store_lock:  # only the checkpoint needs the store open; tar and upload run after
            store = self.stores.get(partition)
            if store is None:
                return None
            work = self.snapshots.checkpoint(store, self.cfg.data_dir / "scratch", partition)
        snap = self.snapshots.publish(partition, work)
        metrics.observe_snapshot(partition, snap)
        return snap

    def _snapshot_periodically(self) -> None:
        while not self._stop.wait(self.cfg.snapshot_interval_s):
            for p in sorted(self.leading):  # the leader snapshots; followers would only duplicate it
                try:
                    snap = self.take_snapshot(p)
                    if snap is not None:
                        log.info("partition %d: snapshot at offset %d (%d bytes)", p, snap.applied_offset,
                                 snap.size_bytes)
                except Exception:  # noqa: BLE001 - a failed snapshot is retried next round
                    log.exception("partition %d: snapshot failed", p)

    def _apply_batch(self, partition: int, msgs: list[Message]) -> None:
        started = time.perf_counter()
        result, records, undecodable = apply_messages(
            self.stores[partition], partition, self.partition_count, msgs, self.changelog,
            on_retry=lambda e, n: log.warning("partition %d: %s; retrying the batch (%d)", partition, e, n))
        for m, reason in undecodable:
            self._dead_letter(m, "unknown", Rejection.UNDECODABLE, reason)
        if result.rejected:
            by_offset = {m.offset(): m for m in msgs}
            for r in result.rejected:
                self._dead_letter(by_offset[r.offset], r.kind, r.reason, r.message)
        metrics.records_applied(partition, len(records))
        metrics.APPLY_SECONDS.observe(time.perf_counter() - started)
        for reason in result.dropped:
            log.debug("partition %d: %s", partition, reason)
        became_leader = self._check_leadership(partition, records)
        if partition in self.leading and (became_leader or result.actions):  # else: no loop wake-up for nothing
            self._loop.call_soon_threadsafe(self._after_batch, partition, became_leader, result.actions)

    def _after_batch(self, partition: int, became_leader: bool, actions: list[Action]) -> None:
        if became_leader:
            dropping = self._dropping.pop(partition, None)
            if dropping is not None and not dropping.done():  # its old attempts first, or start() skips them
                dropping.add_done_callback(lambda _t: self._become_leader(partition)
                                           if partition in self.leading else None)
            else:
                self._become_leader(partition)
        else:
            self._perform(partition, actions)

    def _dead_letter(self, msg: Message, kind: str, rejection: Rejection, reason: str) -> None:
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

    # leader actions (event loop) ---------------------------------------------------------------
    def _perform(self, partition: int, actions: list[Action]) -> None:
        if partition not in self.leading:
            return
        store = self.stores[partition]
        with self.invoker.batch():  # the batch's sends to services leave together (Invoker.batch)
            for a in actions:
                if isinstance(a, StreamNotification):
                    self.invoker.deliver(a.invocation_id, a.attempt, a.index, a.frame)
                elif isinstance(a, RunAttempt):
                    self.invoker.start(partition, store, self.claimed[partition], a.invocation_id, a.attempt)
                elif isinstance(a, ScheduleTimer):
                    self.timers.schedule(partition, a.timer_key, a.fire_at_ms)
                elif isinstance(a, ShipOutbox) and not self._hold_outbox:
                    self.shipper.ship(partition, store, a.seq)
                elif isinstance(a, AbortAttempt):
                    self.invoker.abort(a.invocation_id, a.attempt)

    def _sweep_retention(self) -> None:
        """For each led partition with completions past their retention, ask it to forget them."""
        if self._stop.is_set():
            return
        before = now_ms() - int(self.cfg.completed_retention_s * 1000)
        for p in sorted(self.leading):
            with self._store_lock:
                store = self.stores.get(p)
                due = store is not None and TablesView(Transaction(store)).completions.before(before, 1)
            if due:
                self.records.retention_sweep(p, before)
        self._loop.call_later(self.cfg.retention_sweep_interval_s, self._sweep_retention)


def _hold_for_test(hold: str | None) -> None:
    """Fault injection for tests: the apply loop waits while the file REPRISE_FAULT_HOLD_APPLY names
    exists, at its start (a processor that has not caught up yet) and before applying each batch
    (a woken process that acts before it reads the log). Never set in production."""
    while hold and os.path.exists(hold):
        time.sleep(0.1)

