"""Kafka subscriptions: which user topics invoke which handlers (a compacted topic every process reads)."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Producer

from reprise.engine.clock import now_ms
from reprise.engine.config import Config
from reprise.engine.kafka import produce_record, producer_config
from reprise.engine.topic_view import TopicView


@dataclass(frozen=True)
class Subscription:
    id: str
    source_topic: str
    service: str
    handler: str
    created_ms: int

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "source": f"kafka://default/{self.source_topic}",
                "sink": f"service://{self.service}/{self.handler}", "options": {}}


def subscription_id(topic: str, service: str, handler: str) -> str:
    """The same (topic, target) is the same subscription: creating it twice is harmless."""
    return "sub_" + hashlib.sha256(f"{topic}\0{service}\0{handler}".encode()).hexdigest()[:20]


class SubscriptionRegistry:
    def __init__(self, cfg: Config) -> None:
        self._cfg = cfg
        self._subs: dict[str, Subscription] = {}
        self._changed = threading.Condition()
        self._view = TopicView(cfg, cfg.subscriptions_topic, "Subscription", self._on_record)
        self._producer: Producer | None = None

    def start(self, timeout: float = 30.0) -> None:
        self._view.start(timeout)

    def stop(self) -> None:
        self._view.stop()

    def loaded(self) -> bool:
        """Every subscription on the topic at start was read (readiness)."""
        return self._view.loaded()

    def _on_record(self, key: bytes, record: dict[str, Any] | None) -> None:
        with self._changed:
            if record is None:
                self._subs.pop(key.decode(), None)
            else:
                self._subs[record["id"]] = Subscription(**record)
            self._changed.notify_all()

    def all(self) -> list[Subscription]:
        with self._changed:
            return sorted(self._subs.values(), key=lambda s: s.created_ms)

    def get(self, sub_id: str) -> Subscription | None:
        with self._changed:
            return self._subs.get(sub_id)

    def _write(self, key: str, record: dict[str, Any] | None, present: bool, timeout: float) -> None:
        if self._producer is None:
            self._producer = Producer(producer_config(self._cfg))
        if record is None:
            self._producer.produce(self._cfg.subscriptions_topic, key=key.encode(), value=None, partition=0)
        else:
            produce_record(self._producer, self._cfg.subscriptions_topic, 0, "Subscription", record, key=key.encode())
        if self._producer.flush(timeout) != 0:
            raise TimeoutError("subscription record not acknowledged by Kafka")
        deadline = time.monotonic() + timeout
        with self._changed:
            while (key in self._subs) != present:
                if not self._changed.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError("subscription record not read back from Kafka")

    def create(self, topic: str, service: str, handler: str) -> tuple[Subscription, bool]:
        """(the subscription, whether it is new)."""
        sub_id = subscription_id(topic, service, handler)
        existing = self.get(sub_id)
        if existing is not None:
            return existing, False
        sub = Subscription(sub_id, topic, service, handler, now_ms())
        self._write(sub_id, sub.__dict__, True, 15.0)
        return sub, True

    def delete(self, sub_id: str) -> bool:
        if self.get(sub_id) is None:
            return False
        self._write(sub_id, None, False, 15.0)
        return True
