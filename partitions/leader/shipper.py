"""The leader's outbox shipper: delivers outbox entries, then records how far delivery got.

Steps, per partition: (1) apply() stores an entry and returns ShipOutbox(seq); (2) the leader
produces it, with (partition, seq) in its body (a Reply for an ingress in this same process is
handed to it directly instead: engine/local_replies.py); (3) once Kafka acknowledged every entry up to some
seq, the leader appends OutboxShipped(up_to) to its own partition, and apply() deletes them. A crash
between (2) and (3) re-ships on restart; receivers drop the copies by (partition, seq).

Order under failure (partitions/leader/outbox_lanes.py). A log partition receiving entries keeps only
the highest seq it applied per source partition and drops anything at or below it, so an entry
must reach its partition before any later entry to it does, even when its delivery fails. Hence
at most one entry is in flight per receiving log partition: the next goes once the previous one was
acknowledged; a failed one is retried (every RETRY_S, a warning each time) while the entries
behind it wait, and OutboxShipped never reaches past an unfinished entry. An entry that keeps
failing holds its partition: wedged and loud, never dropped. Entries to other partitions go on
meanwhile; a failed reply (its receiver keeps no high-water) is retried alone, holding nothing.

An entry addressed where it may not go (a Reply to a topic the operator does not allow,
engine/reply_topics.py) is never produced: it is dropped with a warning and counts as delivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from confluent_kafka import KafkaError, Message

from reprise.engine import faults
from reprise.engine.config import Config
from reprise.engine.local_replies import LocalReplies
from reprise.engine.produce_burst import ProduceBurst
from reprise.engine.reply_topics import ReplyTopics
from reprise.partitions import metrics
from reprise.partitions.core.tables import TablesView
from reprise.partitions.core.transaction import KeyValueStore, Transaction
from reprise.partitions.leader.outbox_lanes import Destination, Lanes
from reprise.schemas import codec
from reprise.schemas.records import OutboxEntry

log = logging.getLogger(__name__)
ShippedSink = Callable[[int, int], None]
RETRY_S = 0.5


class _Source:
    """One led partition's shipping state."""

    __slots__ = ("unfinished", "acked_max", "reported", "lanes")

    def __init__(self) -> None:
        self.unfinished: set[int] = set()  # produced and not acknowledged, or failed, or waiting in a lane
        self.acked_max = -1
        self.reported = -1
        self.lanes = Lanes()  # log partitions: one entry in flight each


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
        entry = TablesView(Transaction(store)).outbox.entry(seq)
        if entry is None:
            return  # already shipped and truncated
        src.unfinished.add(seq)
        refusal = self.refusal(entry["topic"], entry["kind"])
        if refusal is not None:  # never write into a topic the record's sender chose and may not use
            log.warning("outbox entry %d of partition %d not shipped: %s", seq, partition, refusal)
            metrics.REPLIES_REFUSED.inc()
            self._loop.call_soon(self._acked, partition, store, src, seq, entry, None)
            return
        if entry["topic"] == "log" and not src.lanes.admit((entry["topic"], entry["partition"]), seq):
            return  # an earlier entry to that partition is in flight: this one goes after it
        self._produce(partition, store, src, seq, entry)

    def _produce(self, partition: int, store: KeyValueStore, src: _Source, seq: int, entry: OutboxEntry) -> None:
        local = self._local_replies
        if entry["topic"] == "replies" and local is not None and local.any_registered() and local.deliver(
                codec.decode(entry["kind"], 1, entry["value"])):
            # its ingress is in this process: handed over (bookkeeping a turn later: no recursion through held entries)
            self._loop.call_soon(self._acked, partition, store, src, seq, entry, None)
            return

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            self._loop.call_soon_threadsafe(self._acked, partition, store, src, seq, entry, err)

        if entry["topic"] == "log" and faults.fail_point("outbox-produce"):  # tests only: as if its batch failed
            self._loop.call_later(faults.FAILURE_REPORT_S, self._acked, partition, store, src, seq, entry,
                                  KafkaError(KafkaError._FAIL, "injected fault"))
            return
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

    def _acked(self, partition: int, store: KeyValueStore, src: _Source, seq: int, entry: OutboxEntry,
               err: KafkaError | None) -> None:
        if self._sources.get(partition) is not src:
            return  # the partition was dropped (stepped down) since: its next leader ships it
        dest = (entry["topic"], entry["partition"])
        if err is not None:  # retried; a log entry stays in flight in its lane, so nothing behind it goes first
            log.warning("outbox entry %d of partition %d to %s[%d] not delivered (%s); retrying it", seq, partition,
                        dest[0], dest[1], err)
            self._loop.call_later(RETRY_S, self._retry_one, partition, store, src, seq, entry)
            return
        src.unfinished.discard(seq)
        src.acked_max = max(src.acked_max, seq)
        if dest[0] == "log":
            self._ship_next(partition, store, src, dest, seq)
        if partition not in self._flush_scheduled:
            self._flush_scheduled.add(partition)
            self._loop.call_later(self._interval, self._report, partition)

    def _retry_one(self, partition: int, store: KeyValueStore, src: _Source, seq: int, entry: OutboxEntry) -> None:
        if self._sources.get(partition) is src:
            self._produce(partition, store, src, seq, entry)

    def _ship_next(self, partition: int, store: KeyValueStore, src: _Source, dest: Destination, seq: int) -> None:
        """``seq`` reached ``dest``: the lowest entry waiting for it goes now."""
        tables = TablesView(Transaction(store))
        while (nxt := src.lanes.delivered(dest, seq)) is not None:
            entry = tables.outbox.entry(nxt)
            if entry is not None:
                self._produce(partition, store, src, nxt, entry)
                return
            src.unfinished.discard(nxt)  # cannot happen while it is unfinished (never reported); kept safe
            seq = nxt

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

    def backlogged(self) -> bool:
        """An entry waits in a lane for the acknowledgement of the one before it. Read by the apply
        thread, which serves the producer's delivery reports: it then polls for them without waiting."""
        return any(src.lanes.backlogged() for src in list(self._sources.values()))

    def drop_partition(self, partition: int) -> None:
        self._sources.pop(partition, None)
