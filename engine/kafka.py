"""Kafka plumbing every process shares: client settings, topics, record production.

The settings (docs/architecture.md says why): acks=all with idempotence (durable before visible), no
linger on the latency path, fetches that return as soon as data is there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from reprise.engine import kafka_errors
from reprise.engine.config import Config
from reprise.engine.kafka_properties import KafkaConfigError, settings_for
from reprise.schemas import codec

RDKAFKA_LOG = logging.getLogger("rdkafka")
RDKAFKA_LOG.addFilter(kafka_errors.ConnectFailures())  # a broker outage is one line an interval, not a flood


def producer_config(cfg: Config, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": cfg.bootstrap,
        "logger": RDKAFKA_LOG,
        "error_cb": kafka_errors.client_error,
        "acks": "all",
        "enable.idempotence": True,
        # 0, not 1: a call crosses two producers (its Invoke, then its effects), and at 1 ms greet's
        # p50 at C=1 was 7.0-7.1 ms against 3.9-4.4 at 0 (tests/bench/ab.py). Under
        # load batches still form while requests are in flight; C=64 throughput moved within the drift.
        "linger.ms": 0,
        "retry.backoff.ms": 10,
        "message.max.bytes": cfg.max_message_bytes + 64 * 1024,
        "compression.type": "lz4",
        **settings_for(cfg.kafka_config, "producer"),
        **extra,
    }


def consumer_config(cfg: Config, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": cfg.bootstrap,
        "logger": RDKAFKA_LOG,
        "error_cb": kafka_errors.client_error,
        "group.id": f"{cfg.namespace}.unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # A fetch returns as soon as data is there (fetch.min.bytes 1); the wait only paces idle polls.
        # 10 ms made every idle consumer poll the broker 100 times a second: measured, 0.35 of a core
        # of broker CPU under the steps benchmark against 0.29 at 100 ms, with no added latency.
        "fetch.wait.max.ms": 100,
        "fetch.min.bytes": 1,
        "fetch.max.bytes": max(52428800, cfg.max_message_bytes * 2),
        "max.partition.fetch.bytes": cfg.max_message_bytes + 64 * 1024,
        "isolation.level": "read_committed",
        "enable.partition.eof": False,
        **settings_for(cfg.kafka_config, "consumer"),
        **extra,
    }


def admin_config(cfg: Config) -> dict[str, Any]:
    return {"bootstrap.servers": cfg.bootstrap, "logger": RDKAFKA_LOG, "error_cb": kafka_errors.client_error,
            **settings_for(cfg.kafka_config, "admin")}


def new_admin(cfg: Config) -> AdminClient:
    return AdminClient(admin_config(cfg))


def check_client_settings(cfg: Config) -> None:
    """Build one client of each kind with the configured settings, so a key librdkafka refuses is an
    error at start (``KafkaConfigError``) rather than inside whichever component builds one first."""
    try:
        Producer(producer_config(cfg)).flush(0)
        Consumer(consumer_config(cfg)).close()
        AdminClient(admin_config(cfg))
    except KafkaException as e:
        raise KafkaConfigError(f"{cfg.kafka_config}: {e.args[0].str()}") from None


def unreachable(cfg: Config, timeout: float = 15.0) -> str | None:
    """Why no broker answers at the bootstrap servers (None: one does), known as soon as librdkafka has
    tried each of them (``_ALL_BROKERS_DOWN``) rather than after ``timeout``. Silent: a command that
    stops on it says so in one line."""
    errors: list[KafkaError] = []
    settings: dict[str, Any] = {**admin_config(cfg), "error_cb": errors.append, "log_level": 0}
    admin = AdminClient(settings)
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=min(0.25, max(0.05, deadline - time.monotonic())))
            return None
        except KafkaException as e:
            last = e.args[0]
        admin.poll(0)  # serves error_cb
        fatal = [e for e in errors if e.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE,
                                                   KafkaError._AUTHENTICATION, KafkaError._SSL)]
        if fatal or time.monotonic() >= deadline:
            return f"cannot reach Kafka at {cfg.bootstrap}: {(fatal or [last])[-1].str()}"


def min_insync_replicas(replication_factor: int) -> int:
    """2 wherever a second replica exists: with ``acks=all`` a record is then on two brokers before it
    is acknowledged, so losing one broker loses nothing acknowledged. At RF=2 that means both replicas:
    while one broker is down, writes are refused (503 at the ingress) rather than acknowledged on a
    single copy; RF=3 keeps writing through the loss of one broker."""
    return 2 if replication_factor >= 2 else 1


def single_replica_warning(replicas: int, role: str) -> str | None:
    """What to warn about when the log has one replica: fine for ``reprise dev``, data loss elsewhere."""
    if replicas != 1 or role == "dev":
        return None
    return ("the log topic has replication factor 1: losing its broker's disk loses acknowledged "
            "invocations; create topics with REPRISE_REPLICATION_FACTOR=3 for anything but development")


def topic_replicas(cfg: Config, topic: str, timeout: float = 10.0) -> int:
    """A topic's replication factor on the broker (0: no such topic)."""
    md = new_admin(cfg).list_topics(topic, timeout=timeout)
    found = md.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        return 0
    return min(len(p.replicas) for p in found.partitions.values())


def topic_specs(cfg: Config) -> list[NewTopic]:
    """Every topic Reprise needs, with the settings docs/architecture.md explains."""
    max_bytes = str(cfg.max_message_bytes + 64 * 1024)
    rf = cfg.replication_factor
    min_isr = str(min_insync_replicas(rf))
    return [
        NewTopic(cfg.log_topic, cfg.partitions, rf, config={
            "cleanup.policy": "delete", "retention.ms": "-1", "max.message.bytes": max_bytes,
            "min.insync.replicas": min_isr, "message.timestamp.type": "CreateTime"}),
        # As many partitions as the log (a delta goes to its log partition's number), kept as long
        NewTopic(cfg.changelog_topic, cfg.partitions, rf, config={
            "cleanup.policy": "delete", "retention.ms": "-1", "max.message.bytes": max_bytes,
            "min.insync.replicas": min_isr, "message.timestamp.type": "CreateTime"}),
        # Kafka-native clients write commands here (ingress/commands.py routes them to the log). Its
        # partition count only bounds how many routers share the work; the broker stamps each command's
        # time (LogAppendTime), from which the router derives ids and delays, so a re-read gives the same.
        # Smaller records than the log's, so a command's dead-letter copy always fits its topic.
        NewTopic(cfg.commands_topic, cfg.partitions, rf, config={
            "cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000),
            "max.message.bytes": str(cfg.max_message_bytes + 16 * 1024), "min.insync.replicas": min_isr,
            "message.timestamp.type": "LogAppendTime"}),
        NewTopic(cfg.replies_topic, 1, rf, config={
            "cleanup.policy": "delete", "retention.ms": str(24 * 3600 * 1000),
            "max.message.bytes": max_bytes, "min.insync.replicas": min_isr}),
        NewTopic(cfg.deployments_topic, 1, rf, config={
            "cleanup.policy": "compact", "max.message.bytes": max_bytes, "min.insync.replicas": min_isr}),
        NewTopic(cfg.subscriptions_topic, 1, rf, config={
            "cleanup.policy": "compact", "min.insync.replicas": min_isr}),
        NewTopic(cfg.dead_letter_topic, 1, rf, config={
            "cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000),
            "max.message.bytes": max_bytes, "min.insync.replicas": min_isr}),
    ]


def create_topics(cfg: Config, timeout: float = 30.0) -> list[str]:
    """Create missing topics (idempotent). Returns the names it created."""
    admin = new_admin(cfg)
    existing = admin.list_topics(timeout=timeout).topics
    log = existing.get(cfg.log_topic)
    if log is not None and log.partitions:  # the broker's count wins over the configured one
        cfg = replace(cfg, partitions=len(log.partitions))  # (a changelog added to an existing log matches it)
    wanted = [t for t in topic_specs(cfg) if t.topic not in existing]
    created = []
    for name, fut in (admin.create_topics(wanted, operation_timeout=timeout) if wanted else {}).items():
        try:
            fut.result(timeout)
            created.append(name)
        except KafkaException as e:
            if e.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    deadline = time.monotonic() + timeout
    while created and time.monotonic() < deadline:  # metadata settles before first use
        topics = admin.list_topics(timeout=timeout).topics
        if all(n in topics and not topics[n].error and topics[n].partitions
               and all(p.leader >= 0 for p in topics[n].partitions.values()) for n in created):
            break
        time.sleep(0.1)
    return created


def log_partitions(cfg: Config, timeout: float = 10.0) -> int:
    """The partition count of the log topic as the broker has it (the source of truth)."""
    count = topic_partitions(cfg, cfg.log_topic, timeout)
    if not count:
        raise RuntimeError(f"topic {cfg.log_topic} not found on {cfg.bootstrap}: run 'reprise topics create'")
    return count


def topic_partitions(cfg: Config, topic: str, timeout: float = 10.0) -> int:
    """A topic's partition count on the broker (0: no such topic)."""
    md = new_admin(cfg).list_topics(topic, timeout=timeout)
    found = md.topics.get(topic)
    return 0 if found is None or found.error is not None or not found.partitions else len(found.partitions)


def topic_max_message_bytes(cfg: Config, topic: str, timeout: float = 10.0) -> int:
    """The broker's ``max.message.bytes`` for a topic (what a record may weigh at most)."""
    from confluent_kafka.admin import ConfigResource

    admin = new_admin(cfg)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout)
    return int(entries["max.message.bytes"].value)


def produce_record(producer: Producer, topic: str, partition: int, kind: str, record: Mapping[str, Any],
                   key: bytes | None = None, on_delivery: Callable[..., None] | None = None) -> None:
    """Encode ``record`` as ``kind`` and produce it with its schema headers."""
    produce_encoded(producer, topic, partition, kind, codec.encode(kind, record), key, on_delivery)


def produce_encoded(producer: Producer, topic: str, partition: int, kind: str, value: bytes,
                    key: bytes | None = None, on_delivery: Callable[..., None] | None = None) -> None:
    kwargs: dict[str, Any] = {"value": value, "key": key, "headers": codec.headers_for(kind)}
    if partition >= 0:  # else: Kafka's partitioner chooses by key
        kwargs["partition"] = partition
    if on_delivery is not None:
        kwargs["on_delivery"] = on_delivery
    produce_retrying(producer, topic, **kwargs)


def produce_retrying(producer: Producer, topic: str, **kwargs: Any) -> None:
    """``Producer.produce``, waiting out a full local queue (its deliveries drain it) instead of failing."""
    while True:
        try:
            producer.produce(topic, **kwargs)
            return
        except BufferError:
            producer.poll(0.05)


def record_timestamp(cfg: Config, topic: str, partition: int, offset: int, timeout: float = 10.0) -> int | None:
    """The timestamp of the record at ``offset`` of a topic partition (None if it cannot be read)."""
    consumer = new_consumer(cfg, **{"fetch.wait.max.ms": 100})
    try:
        consumer.list_topics(topic, timeout=10)  # metadata first, or the fetch may wait ~1 s for it
        consumer.assign([TopicPartition(topic, partition, offset)])
        fetched = next_batch(consumer, 1, timeout)
    finally:
        consumer.close()
    if not fetched or fetched[0].error() is not None or fetched[0].offset() != offset:
        return None
    return fetched[0].timestamp()[1]


def new_consumer(cfg: Config, **extra: Any) -> Consumer:
    return Consumer(consumer_config(cfg, **extra))


def watermarks(consumer: Consumer, topic: str, partition: int, timeout: float = 30.0) -> tuple[int, int]:
    """The partition's (first, end) offsets, retrying while a new topic's leader is being elected."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def high_watermark(consumer: Consumer, topic: str, partition: int, timeout: float = 30.0) -> int:
    """The partition's end offset, retrying while a new topic's leader is being elected."""
    return watermarks(consumer, topic, partition, timeout)[1]


class LoopDeliveries:
    """Serves a producer's delivery reports on the event loop, polling while any are outstanding.

    A thread blocked in ``poll()`` is woken for every acknowledged batch and then has to wake the
    loop: two thread wake-ups per ack, ~40 µs of CPU each on a 2-core VM (docs/benchmarks.md,
    "Thread wake-ups").
    Polled from the loop, a report costs a timer tick while a record is unacknowledged;
    callbacks run on the loop, so they may settle futures directly.

    ``poll(0)`` drops the GIL, and under load the apply thread then keeps it: ~90 µs of wall time per
    poll against 0.5 µs uncontended. So the loop polls every ``interval_s`` only
    while someone awaits an ack (a one-way send answers 202 once its record is in the log); when the
    records outstanding are calls, whose reports matter only if Kafka gave up on them (a 503 after
    ``message.timeout.ms``), every ``relaxed_s``.
    """

    IDLE_S = 1.0  # librdkafka's logs and errors are served at least this often

    def __init__(self, producer: Producer, loop: asyncio.AbstractEventLoop, interval_s: float = 0.001,
                 relaxed_s: float = 0.05) -> None:
        self.producer = producer
        self._loop = loop
        self._interval = interval_s
        self._relaxed = relaxed_s
        self._awaited = 0  # records produced with track(..., awaited=True) and not yet reported
        self._tick: asyncio.Handle | None = None  # uvloop may return a plain Handle for a near deadline
        self._tick_at = 0.0
        self._idle: asyncio.Handle | None = loop.call_later(self.IDLE_S, self._idle_poll)

    def track(self, callback: Callable[[KafkaError | None, Message], None],
              awaited: bool) -> Callable[[KafkaError | None, Message], None]:
        """The delivery callback to produce with; ``awaited``: something waits on this ack."""
        if not awaited:
            return callback

        def delivered(err: KafkaError | None, msg: Message) -> None:
            self._awaited -= 1
            callback(err, msg)

        return delivered

    def produced(self, awaited: bool) -> None:
        """A record was just produced (with a ``track``-ed callback): poll until every one is reported."""
        if awaited:
            self._awaited += 1
        self._schedule()

    def _schedule(self) -> None:
        when = self._loop.time() + (self._interval if self._awaited else self._relaxed)
        if self._tick is not None:
            if self._tick_at <= when:
                return
            self._tick.cancel()
        self._tick, self._tick_at = self._loop.call_at(when, self._pump), when

    def _pump(self) -> None:
        self._tick = None
        self.producer.poll(0)
        # queued, in flight, or reported but not served yet; or awaited and still in a ProduceBurst
        # (engine/produce_burst.py), which hands it to the producer after this tick when the loop is busy
        if len(self.producer) or self._awaited:
            self._schedule()

    def _idle_poll(self) -> None:
        self.producer.poll(0)
        self._idle = self._loop.call_later(self.IDLE_S, self._idle_poll)

    def close(self, flush_timeout: float = 5.0) -> None:
        """Stop polling and deliver what is queued (its callbacks run here, on the caller's thread)."""
        for handle in (self._tick, self._idle):
            if handle is not None:
                handle.cancel()
        self._tick = self._idle = None
        self.producer.flush(flush_timeout)


def next_batch(consumer: Consumer, max_messages: int, timeout: float) -> list[Any]:
    """Whatever is ready, as soon as anything is: up to ``max_messages``, waiting at most ``timeout``.

    ``Consumer.consume(n, t)`` waits until it has n messages or t passed, which adds t to every hop
    of a lightly loaded engine (the 100x trap). Polling for the first message and then taking only
    what is already fetched returns at once.
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    batch = [first, *consumer.consume(max_messages - 1, 0)] if max_messages > 1 else [first]
    for m in batch:  # an error in place of a record (a denied group or topic) is logged, not dropped
        if (err := m.error()) is not None:
            kafka_errors.report(err)
    return batch
