"""Following a small compacted topic from its start: the shared mechanism of every registry.

Deployments and subscriptions are records on compacted topics; each process reads such a topic
from the beginning, hands each record to a callback, and keeps following it.
``start`` returns once everything present at start-up has been read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition
from prometheus_client import Counter

from reprise.engine.config import Config
from reprise.engine.critical import critical_thread
from reprise.engine.kafka import high_watermark, new_consumer, next_batch
from reprise.schemas import codec

log = logging.getLogger(__name__)

SKIPPED = Counter("reprise_registry_records_skipped_total", "Records of a registry topic that did not decode "
                  "as its kind (skipped)", ["topic"])

OnRecord = Callable[[bytes, dict[str, Any] | None], None]  # (key, decoded record or None for a tombstone)


class TopicView:
    def __init__(self, cfg: Config, topic: str, kind: str, on_record: OnRecord, also: tuple[str, ...] = ()) -> None:
        self._cfg = cfg
        self._topic = topic
        self._kind = kind
        self._kinds = (kind, *also)  # the kinds of record the topic holds (each decoded by its headers)
        self._on_record = on_record
        self._loaded = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._position = 0  # the next offset to read
        self._advanced = threading.Condition()

    def start(self, timeout: float = 30.0) -> None:
        # Critical: a process whose registry stopped following its topic would act on a stale one
        self._thread = critical_thread(self._follow, f"view-{self._topic}")
        if not self._loaded.wait(timeout):
            raise TimeoutError(f"topic {self._topic} not readable within {timeout}s")

    def loaded(self) -> bool:
        return self._loaded.is_set()

    def sync(self, timeout: float = 5.0) -> bool:
        """Wait until every record now on the topic has been read: for a caller that must not act on
        a view that lags (another process may have just written a record). False on timeout."""
        deadline = time.monotonic() + timeout
        probe = new_consumer(self._cfg)  # not the view's own: a query on it can block behind its fetches
        try:
            high = high_watermark(probe, self._topic, 0, timeout)
        except KafkaException:
            return False
        finally:
            probe.close()
        with self._advanced:
            while self._position < high:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._advanced.wait(remaining)
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def _follow(self) -> None:
        consumer = new_consumer(self._cfg)
        _wait_for_leader(consumer, self._topic)
        consumer.assign([TopicPartition(self._topic, 0, OFFSET_BEGINNING)])
        high = high_watermark(consumer, self._topic, 0)
        if high == 0:
            self._loaded.set()
        try:
            while not self._stop.is_set():
                for msg in next_batch(consumer, 100, 0.2):
                    if msg.error():
                        continue
                    self._take(msg)
                    with self._advanced:
                        self._position = msg.offset() + 1
                        self._advanced.notify_all()
                    if msg.offset() + 1 >= high:
                        self._loaded.set()
        finally:
            consumer.close()


    def _take(self, msg: Any) -> None:
        """Hand one record to the callback; a record that is not of this view's kind is skipped
        (logged and counted): the topic is writable by others, and the view must keep following it."""
        value = msg.value()
        try:
            record = None
            if value is not None:
                kind, version = codec.kind_of(msg.headers()) if msg.headers() else (self._kind, 1)
                if kind not in self._kinds:
                    raise codec.SchemaError(f"a {kind} record")
                record = codec.decode(kind, version, value)
            self._on_record(msg.key() or b"", record)
        except Exception as e:  # noqa: BLE001 - whatever is wrong with the record, it is skipped
            SKIPPED.labels(self._topic).inc()
            log.warning("%s/%d/%d: skipped, not a %s: %s: %s", msg.topic(), msg.partition(), msg.offset(),
                        self._kind, type(e).__name__, e)


def _wait_for_leader(consumer: Any, topic: str, timeout: float = 30.0) -> None:
    """Assign only once the topic's partition has a leader: a consumer assigned to a topic created a
    moment ago (by another process) was seen to stay blind to its records for minutes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
        except KafkaException:
            meta = None
        part = meta.partitions.get(0) if meta is not None and meta.error is None else None
        if part is not None and part.leader >= 0 and part.error is None:
            return
        time.sleep(0.1)
