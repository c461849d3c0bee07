"""The leader's outbox shipper: delivers outbox entries, then records how far delivery got.

Steps, per partition: (1) apply() stores an entry and returns ShipOutbox(seq); (2) the leader
produces it, with (partition, seq) in its body (a Reply for an ingress in this same process is
handed to it directly instead: engine/local_replies.py); (3) once Kafka acknowledged every entry up to some
seq, the leader appends OutboxShipped(up_to) to its own partition, and apply() deletes them. A crash
between (2) and (3) re-ships on restart; receivers drop the copies by (partition, seq).

Order under failure. A log partition receiving entries keeps only the highest seq it applied per
source partition and drops anything at or below it, so an entry that failed must reach its
partition before any later entry to the same partition does, or it would be dropped as a copy.
Hence: (a) an entry that failed stays unfinished, and OutboxShipped never reaches past an
unfinished entry; (b) once an entry to a log partition failed, later entries to it are held; the
failed and held ones are then shipped one at a time, lowest seq first, each after the previous
one was acknowledged, until none is left and the partition is batched again; (c) within one
producer turn, a refused entry makes the turn's later entries to its partition refused too
(ProduceBurst ``ordered``). Entries to other destinations go on meanwhile, batched as before;
a failed reply (its receiver keeps no high-water) is retried alone, holding nothing.

What (b) cannot undo: entries to the same destination already in flight when an earlier one
fails. The processor's producer never times a record out (``message.timeout.ms`` 0), so that takes
a permanent broker error on one batch while a later batch succeeds; it is logged as an error.
An entry that keeps failing holds its destination (retried every RETRY_S, a warning each time):
wedged and loud, never dropped.

An entry addressed where it may not go (a Reply to a topic the operator does not allow,
engine/reply_topics.py) is never produced: it is dropped with a warning and counts as delivered.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Callable

from confluent_kafka import KafkaError, Message

from reprise.engine.config import Config
from reprise.engine.local_replies import LocalReplies
from reprise.engine.produce_burst import ProduceBurst
from reprise.engine.reply_topics import ReplyTopics
from reprise.partitions import metrics
from reprise.partitions.core.tables import Row, Tables
from reprise.partitions.core.transaction import KeyValueStore, Transaction
from reprise.schemas import codec

log = logging.getLogger(__name__)
ShippedSink = Callable[[int, int], None]
Destination = tuple[str, int]  # (topic, partition); partition -1: Kafka picks it by key
RETRY_S = 0.5


class _Source:
    """One led partition's shipping state."""

    __slots__ = ("unfinished", "acked_max", "reported", "held", "probing", "retry_scheduled")

    def __init__(self) -> None:
        self.unfinished: set[int] = set()  # produced and not acknowledged, or failed and not yet delivered
        self.acked_max = -1
        self.reported = -1
        self.held: dict[Destination, list[int]] = {}  # destinations with a failed entry: seqs to ship, in order
        self.probing: dict[Destination, int] = {}  # the one held entry in flight to each such destination
        self.retry_scheduled: set[Destination] = set()


class OutboxShipper:
    def __init__(self, cfg: Config, burst: ProduceBurst, loop: asyncio.AbstractEventLoop,
                 shipped: ShippedSink, report_interval_s: float = 0.2,
                 local_replies: LocalReplies | None = None) -> None:
        self._cfg = cfg
        self._local_replies = local_replies  # the ingresses of this process, if any (engine/local_replies.py)
        self._burst = burst
        self._loop = loop
        self._shipped = shipped
        self._interval = report_interval_s
        self._sources: dict[int, _Source] = {}
        self._flush_scheduled: set[int] = set()
        self._reply_topics = ReplyTopics(cfg)

    def topic_of(self, name: str) -> str:
        return {"log": self._cfg.log_topic, "replies": self._cfg.replies_topic}.get(name, name)

    def ship(self, partition: int, store: KeyValueStore, seq: int) -> None:
        src = self._sources.get(partition)
        if src is None:
            src = self._sources[partition] = _Source()
        if seq in src.unfinished or seq <= src.reported:
            return
        entry = Tables(Transaction(store)).outbox_entry(seq)
        if entry is None:
            return  # already shipped and truncated
        src.unfinished.add(seq)
        refusal = self.refusal(entry["topic"], entry["kind"])
        if refusal is not None:  # never write into a topic the record's sender chose and may not use
            log.warning("outbox entry %d of partition %d not shipped: %s", seq, partition, refusal)
            metrics.REPLIES_REFUSED.inc()
            self._loop.call_soon(self._acked, partition, store, src, seq, entry, None)
            return
        dest = (entry["topic"], entry["partition"])
        held = src.held.get(dest)  # only log partitions are held: their receivers drop what comes late
        if held is not None:  # an earlier entry to it failed: this one waits behind it
            bisect.insort(held, seq)
            return
        self._produce(partition, store, src, seq, entry)

    def _produce(self, partition: int, store: KeyValueStore, src: _Source, seq: int, entry: Row) -> None:
        local = self._local_replies
        if entry["topic"] == "replies" and local is not None and local.any_registered() and local.deliver(
                codec.decode(entry["kind"], 1, entry["value"])):
            # its ingress is in this process: handed over (bookkeeping a turn later: no recursion through held entries)
            self._loop.call_soon(self._acked, partition, store, src, seq, entry, None)
            return

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            self._loop.call_soon_threadsafe(self._acked, partition, store, src, seq, entry, err)

        key = None
        if entry["partition"] < 0:  # a client's reply topic: key by request id, Kafka picks the partition
            key = codec.decode(entry["kind"], 1, entry["value"]).get("request_id", "").encode()
        self._burst.produce_encoded(self.topic_of(entry["topic"]), entry["partition"], entry["kind"], entry["value"],
                                    key=key, on_delivery=delivered, ordered=entry["topic"] == "log")

    def refusal(self, topic: str, kind: str) -> str | None:
        """Why an outbox entry may not go where it says, or None. Records for partitions go to the log;
        a Reply goes to the engine's replies topic or to a client reply topic the operator allows."""
        if topic == "log":
            return None if kind != "Reply" else "a Reply addressed to the log topic"
        if kind != "Reply":
            return f"a {kind} addressed to topic {topic!r}: only Replies leave the log"
        return None if topic == "replies" else self._reply_topics.refusal(topic)

    def _acked(self, partition: int, store: KeyValueStore, src: _Source, seq: int, entry: Row,
               err: KafkaError | None) -> None:
        if self._sources.get(partition) is not src:
            return  # the partition was dropped (stepped down) since: its next leader ships it
        dest = (entry["topic"], entry["partition"])
        if err is not None and dest[0] != "log":  # a reply: its receiver keeps no high-water, order is moot
            log.warning("outbox entry %d of partition %d to %s not delivered (%s); retrying", seq, partition,
                        dest[0], err)
            self._loop.call_later(RETRY_S, self._retry_one, partition, store, src, seq, entry)
            return
        if err is not None:
            log.warning("outbox entry %d of partition %d to %s[%d] not delivered (%s); retrying it before any "
                        "later entry to it", seq, partition, dest[0], dest[1], err)
            held = src.held.setdefault(dest, [])
            if seq not in held:
                bisect.insort(held, seq)
            if src.probing.get(dest) == seq:
                del src.probing[dest]
            if dest not in src.retry_scheduled:
                src.retry_scheduled.add(dest)
                self._loop.call_later(RETRY_S, self._retry, partition, store, src, dest)
            return
        src.unfinished.discard(seq)
        src.acked_max = max(src.acked_max, seq)
        if src.probing.get(dest) == seq:
            del src.probing[dest]
            self._release_next(partition, store, src, dest)
        elif (held := src.held.get(dest)) and held[0] < seq:
            log.error("outbox entry %d of partition %d reached %s[%d] before the failed entry %d: the receiver may "
                      "drop %d as a copy", seq, partition, dest[0], dest[1], held[0], held[0])
        if partition not in self._flush_scheduled:
            self._flush_scheduled.add(partition)
            self._loop.call_later(self._interval, self._report, partition)

    def _retry_one(self, partition: int, store: KeyValueStore, src: _Source, seq: int, entry: Row) -> None:
        if self._sources.get(partition) is src:
            self._produce(partition, store, src, seq, entry)

    def _retry(self, partition: int, store: KeyValueStore, src: _Source, dest: Destination) -> None:
        src.retry_scheduled.discard(dest)
        if self._sources.get(partition) is src and dest not in src.probing:
            self._release_next(partition, store, src, dest)

    def _release_next(self, partition: int, store: KeyValueStore, src: _Source, dest: Destination) -> None:
        """Ship a held destination's lowest entry alone; with none left, the destination is no longer held."""
        held = src.held.get(dest)
        tables = Tables(Transaction(store))
        while held:
            seq = held.pop(0)
            entry = tables.outbox_entry(seq)
            if entry is None:  # cannot happen while it is unfinished (never reported); kept safe
                src.unfinished.discard(seq)
                continue
            src.probing[dest] = seq
            self._produce(partition, store, src, seq, entry)
            return
        src.held.pop(dest, None)

    def _report(self, partition: int) -> None:
        self._flush_scheduled.discard(partition)
        src = self._sources.get(partition)
        if src is None:
            return
        up_to = (min(src.unfinished) - 1) if src.unfinished else src.acked_max
        up_to = min(up_to, src.acked_max)
        if up_to > src.reported:
            src.reported = up_to
            self._shipped(partition, up_to)

    def drop_partition(self, partition: int) -> None:
        self._sources.pop(partition, None)
