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
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Message, Producer, TopicPartition

from engine.config import Config
from engine.kafka import (
    ProducerPoller,
    log_partitions,
    new_consumer,
    next_batch,
    produce_record,
    producer_config,
)
from engine.registry import Registry
from partitions import metrics
from partitions.actions import Action, RunAttempt, ScheduleTimer, ShipOutbox
from partitions.apply import LogRecord, apply_batch
from partitions.invoker import Invoker
from partitions.rebuild import decode
from partitions.shipper import OutboxShipper
from partitions.store import RocksStore, Transaction, applied_offset
from partitions.tables import Tables
from partitions.timers import TimerService

log = logging.getLogger(__name__)


class PartitionProcessor:
    def __init__(self, cfg: Config, registry: Registry, partitions: list[int] | None = None,
                 owner: str | None = None) -> None:
        self.cfg = cfg
        self.registry = registry
        self.owner = owner or f"proc-{uuid.uuid4().hex[:12]}"
        self.partition_count = log_partitions(cfg)
        self.partitions = partitions if partitions is not None else list(range(self.partition_count))
        self.stores: dict[int, RocksStore] = {}
        self.claimed: dict[int, int] = {}  # partition -> epoch this process claimed
        self.leading: set[int] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # Fault injection for tests: behave as if the process died after committing a batch and before
        # shipping its outbox (REPRISE_FAULT_HOLD_OUTBOX=1). Never set in production.
        self._hold_outbox = os.environ.get("REPRISE_FAULT_HOLD_OUTBOX") == "1"
        self.leader_ready = asyncio.Event()

    # lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # Effects, timers and outbox records must never be given up on: no delivery timeout.
        self.producer = Producer(producer_config(self.cfg, **{"message.timeout.ms": 0}))
        self.invoker = Invoker(self.cfg, self.registry, self._emit_effects)
        self.timers = TimerService(self._fire_timer)
        self.shipper = OutboxShipper(self.cfg, self.producer, self._loop, self._outbox_shipped)
        consumer = new_consumer(self.cfg, **{"group.id": f"{self.cfg.namespace}.processors"})
        assignment = []
        for p in self.partitions:
            store = RocksStore(self.cfg.data_dir / "partitions" / f"p{p}")
            self.stores[p] = store
            offset = applied_offset(store)
            assignment.append(TopicPartition(self.cfg.log_topic, p, offset + 1 if offset >= 0 else OFFSET_BEGINNING))
            log.info("partition %d resumes after offset %d", p, offset)
        consumer.assign(assignment)
        for p in self.partitions:
            self._claim(p, Tables(Transaction(self.stores[p])).epoch() + 1)
        self._poller = ProducerPoller(self.producer)
        self._spawn(lambda: self._consume(consumer), "apply")

    async def stop(self) -> None:
        self._stop.set()
        await self.invoker.close()
        self.timers.close()
        for t in self._threads:
            await asyncio.get_running_loop().run_in_executor(None, t.join, 10)
        self._poller.close()
        for s in self.stores.values():
            s.close()

    def _spawn(self, fn: Any, name: str) -> None:
        t = threading.Thread(target=fn, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    # leadership ------------------------------------------------------------------------------
    def _claim(self, partition: int, epoch: int) -> None:
        self.claimed[partition] = epoch
        produce_record(self.producer, self.cfg.log_topic, partition, "LeaderEpoch", {
            "partition": partition, "epoch": epoch, "owner": self.owner, "timestamp_ms": _now_ms()})

    def _check_leadership(self, partition: int, batch: list[LogRecord]) -> bool:
        """After a batch: did our claim win, did a newer claim take the partition, or must we claim again?

        A claim is won when the store's current (epoch, owner) is (our claim, us): an epoch alone
        would not do, since two processors may claim the same number.
        """
        claims = [r for r in batch if r.kind == "LeaderEpoch"]
        if not claims:
            return False
        tables = Tables(Transaction(self.stores[partition]))
        epoch, owner = tables.epoch(), tables.epoch_owner()
        ours = epoch == self.claimed[partition] and owner == self.owner
        if partition in self.leading and not ours:
            self._loop.call_soon_threadsafe(self._step_down, partition)
            self.leading.discard(partition)
            return False
        if ours and partition not in self.leading:
            self.leading.add(partition)
            return True
        if not ours and any(r.value["owner"] == self.owner and r.value["epoch"] == self.claimed[partition]
                            for r in claims):
            self._claim(partition, epoch + 1)  # refused: someone holds this epoch already; try above it
        return False

    def _step_down(self, partition: int) -> None:
        log.warning("partition %d: a newer leader claimed it; stepping down", partition)
        self.timers.drop_partition(partition)
        self.shipper.drop_partition(partition)

    def _become_leader(self, partition: int) -> None:
        """Resume everything left unfinished: running attempts, pending timers, unshipped outbox."""
        tables = Tables(Transaction(self.stores[partition]))
        actions: list[Action] = []
        for inv in tables.invoked_ids():
            row = tables.status(inv)
            if row is not None:
                actions.append(RunAttempt(inv, row["attempt"]))
        actions.extend(ShipOutbox(seq) for seq in tables.outbox_pending())
        self.timers.start_partition(partition, self.stores[partition])
        log.info("partition %d: leader at epoch %d; resuming %d actions", partition,
                 self.claimed[partition], len(actions))
        self._perform(partition, actions)
        if self.leading.issuperset(self.partitions):
            self.leader_ready.set()

    # the apply loop (its own thread) -----------------------------------------------------------
    def _consume(self, consumer: Any) -> None:
        last_commit = time.monotonic()
        try:
            while not self._stop.is_set():
                msgs = next_batch(consumer, 1000, 0.1)
                if not msgs:
                    continue
                by_partition: dict[int, list[Message]] = defaultdict(list)
                for m in msgs:
                    if m.error() is None:
                        by_partition[m.partition()].append(m)
                for p, batch in by_partition.items():
                    self._apply_batch(p, batch)
                if time.monotonic() - last_commit > 1.0:  # group offsets: a lag signal only
                    last_commit = time.monotonic()
                    self._report_lag(consumer)
                    consumer.commit(offsets=[TopicPartition(self.cfg.log_topic, p, o + 1) for p, o in (
                        (p, applied_offset(s)) for p, s in self.stores.items()) if o >= 0], asynchronous=True)
        except Exception:
            log.exception("apply loop crashed")
            raise
        finally:
            consumer.close()

    def _report_lag(self, consumer: Any) -> None:
        metrics.LEADING.set(len(self.leading))
        for p, store in self.stores.items():
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(self.cfg.log_topic, p), cached=True)
            except Exception:  # noqa: BLE001 - a metric must never stop the apply loop
                continue
            if high >= 0:
                metrics.CONSUMER_LAG.labels(str(p)).set(max(0, high - applied_offset(store) - 1))

    def _apply_batch(self, partition: int, msgs: list[Message]) -> None:
        started = time.perf_counter()
        records, undecodable = decode(msgs)
        for m, reason in undecodable:
            self._dead_letter(m, reason)
        tx = Transaction(self.stores[partition])
        result = apply_batch(tx, partition, self.partition_count, records)
        tx.commit(msgs[-1].offset())
        if result.rejected:
            by_offset = {m.offset(): m for m in msgs}
            for offset, reason in result.rejected:
                self._dead_letter(by_offset[offset], reason)
        metrics.RECORDS_APPLIED.labels(str(partition)).inc(len(records))
        metrics.APPLY_SECONDS.observe(time.perf_counter() - started)
        for reason in result.dropped:
            log.debug("partition %d: %s", partition, reason)
        became_leader = self._check_leadership(partition, records)
        if partition in self.leading:
            self._loop.call_soon_threadsafe(self._after_batch, partition, became_leader, result.actions)

    def _after_batch(self, partition: int, became_leader: bool, actions: list[Action]) -> None:
        if became_leader:
            self._become_leader(partition)
        else:
            self._perform(partition, actions)

    def _dead_letter(self, msg: Message, reason: str) -> None:
        """A record the partition cannot use goes to the dead-letter topic with the reason; the
        partition moves on. Only the leader writes it, so a replay does not write it again."""
        metrics.RECORDS_REJECTED.labels(str(msg.partition())).inc()
        log.warning("partition %d offset %d: dead-lettered: %s", msg.partition(), msg.offset(), reason)
        if msg.partition() not in self.leading:
            return
        headers = list(msg.headers() or []) + [
            ("reprise-dead-letter-reason", reason.encode()),
            ("reprise-source", f"{msg.topic()}/{msg.partition()}/{msg.offset()}".encode())]
        while True:
            try:
                self.producer.produce(self.cfg.dead_letter_topic, value=msg.value(), key=msg.key(), headers=headers)
                return
            except BufferError:
                self.producer.poll(0.05)

    # leader actions (event loop) ---------------------------------------------------------------
    def _perform(self, partition: int, actions: list[Action]) -> None:
        if partition not in self.leading:
            return
        store = self.stores[partition]
        for a in actions:
            if isinstance(a, RunAttempt):
                self.invoker.start(partition, store, self.claimed[partition], a.invocation_id, a.attempt)
            elif isinstance(a, ScheduleTimer):
                self.timers.schedule(partition, a.timer_key, a.fire_at_ms)
            elif isinstance(a, ShipOutbox) and not self._hold_outbox:
                self.shipper.ship(partition, store, a.seq)

    def _emit_effects(self, partition: int, effects: dict[str, Any]) -> None:
        produce_record(self.producer, self.cfg.log_topic, partition, "InvokerEffects", effects)

    def _fire_timer(self, partition: int, timer_key: str) -> None:
        if partition in self.leading:
            produce_record(self.producer, self.cfg.log_topic, partition, "TimerFired", {
                "timer_key": timer_key, "epoch": self.claimed[partition], "timestamp_ms": _now_ms()})

    def _outbox_shipped(self, partition: int, up_to: int) -> None:
        if partition in self.leading:
            produce_record(self.producer, self.cfg.log_topic, partition, "OutboxShipped", {
                "epoch": self.claimed[partition], "up_to_seq": up_to})


def _now_ms() -> int:
    return int(time.time() * 1000)
