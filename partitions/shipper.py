"""The leader's outbox shipper: delivers outbox entries, then records how far delivery got.

Steps, per partition: (1) apply() stores an entry and returns ShipOutbox(seq); (2) the leader
produces it, with (partition, seq) in its body (a Reply for an ingress in this same process is
handed to it directly instead: engine/local_replies.py); (3) once Kafka acknowledged every entry up
to some seq, the leader appends OutboxShipped(up_to) to its own partition, and apply() deletes them.
A crash between (2) and (3) re-ships on restart; receivers drop the copies by (partition, seq).
An entry addressed where it may not go (a Reply to a topic the operator does not allow,
engine/reply_topics.py) is never produced: it is dropped with a warning and counts as delivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from confluent_kafka import KafkaError, Message

from engine import local_replies
from engine.config import Config
from engine.produce_burst import ProduceBurst
from engine.reply_topics import ReplyTopics
from partitions import metrics
from partitions.store import KeyValueStore, Transaction
from partitions.tables import Tables
from schemas import codec

log = logging.getLogger(__name__)
ShippedSink = Callable[[int, int], None]


class OutboxShipper:
    def __init__(self, cfg: Config, burst: ProduceBurst, loop: asyncio.AbstractEventLoop,
                 shipped: ShippedSink, report_interval_s: float = 0.2) -> None:
        self._cfg = cfg
        self._burst = burst
        self._loop = loop
        self._shipped = shipped
        self._interval = report_interval_s
        self._inflight: dict[int, set[int]] = {}
        self._acked_max: dict[int, int] = {}
        self._reported: dict[int, int] = {}
        self._flush_scheduled: set[int] = set()
        self._reply_topics = ReplyTopics(cfg)

    def topic_of(self, name: str) -> str:
        return {"log": self._cfg.log_topic, "replies": self._cfg.replies_topic}.get(name, name)

    def ship(self, partition: int, store: KeyValueStore, seq: int) -> None:
        inflight = self._inflight.setdefault(partition, set())
        if seq in inflight or seq <= self._reported.get(partition, -1):
            return
        entry = Tables(Transaction(store)).outbox_entry(seq)
        if entry is None:
            return  # already shipped and truncated
        inflight.add(seq)
        refusal = self.refusal(entry["topic"], entry["kind"])
        if refusal is not None:  # never write into a topic the record's sender chose and may not use
            log.warning("outbox entry %d of partition %d not shipped: %s", seq, partition, refusal)
            metrics.REPLIES_REFUSED.inc()
            self._acked(partition, store, seq, None)
            return
        if entry["topic"] == "replies" and local_replies.any_registered() and local_replies.deliver(
                codec.decode(entry["kind"], 1, entry["value"])):
            self._acked(partition, store, seq, None)  # its ingress is in this process: handed over
            return

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            self._loop.call_soon_threadsafe(self._acked, partition, store, seq, err)

        key = None
        if entry["partition"] < 0:  # a client's reply topic: key by request id, Kafka picks the partition
            key = codec.decode(entry["kind"], 1, entry["value"]).get("request_id", "").encode()
        self._burst.produce_encoded(self.topic_of(entry["topic"]), entry["partition"], entry["kind"], entry["value"],
                                    key=key, on_delivery=delivered)

    def refusal(self, topic: str, kind: str) -> str | None:
        """Why an outbox entry may not go where it says, or None. Records for partitions go to the log;
        a Reply goes to the engine's replies topic or to a client reply topic the operator allows."""
        if topic == "log":
            return None if kind != "Reply" else "a Reply addressed to the log topic"
        if kind != "Reply":
            return f"a {kind} addressed to topic {topic!r}: only Replies leave the log"
        return None if topic == "replies" else self._reply_topics.refusal(topic)

    def _acked(self, partition: int, store: KeyValueStore, seq: int, err: KafkaError | None) -> None:
        inflight = self._inflight.setdefault(partition, set())
        inflight.discard(seq)
        if err is not None:
            log.warning("outbox entry %d of partition %d not delivered (%s); retrying", seq, partition, err)
            self._loop.call_later(0.5, self.ship, partition, store, seq)
            return
        self._acked_max[partition] = max(self._acked_max.get(partition, -1), seq)
        if partition not in self._flush_scheduled:
            self._flush_scheduled.add(partition)
            self._loop.call_later(self._interval, self._report, partition)

    def _report(self, partition: int) -> None:
        self._flush_scheduled.discard(partition)
        inflight = self._inflight.get(partition, set())
        up_to = (min(inflight) - 1) if inflight else self._acked_max.get(partition, -1)
        up_to = min(up_to, self._acked_max.get(partition, -1))
        if up_to > self._reported.get(partition, -1):
            self._reported[partition] = up_to
            self._shipped(partition, up_to)

    def drop_partition(self, partition: int) -> None:
        for d in (self._inflight, self._acked_max, self._reported):
            d.pop(partition, None)
