"""Kafka subscriptions: which user topics invoke which handlers (a compacted topic every process reads)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Producer

from reprise.engine.clock import now_ms
from reprise.engine.config import Config
from reprise.engine.ids import resource_id
from reprise.engine.kafka import produce_record, producer_config
from reprise.engine.kafka_clusters import KEY_PREFIX, KafkaCluster
from reprise.engine.topic_view import TopicView


@dataclass(frozen=True)
class Subscription:
    id: str
    source_topic: str
    service: str
    handler: str
    created_ms: int
    cluster: str | None = None  # a registered cluster's name; None: the cluster Reprise runs on
    options: dict[str, str] = field(default_factory=dict)  # as given at creation (consumer properties)

    def consumer_options(self, namespace: str) -> dict[str, str]:
        """The options its consumer runs with: the engine's defaults under the ones given at creation."""
        return {"group.id": f"{namespace}.{self.id}", "auto.offset.reset": DEFAULT_OFFSET_RESET, **self.options}

    def describe(self, own_cluster: str, namespace: str) -> dict[str, Any]:
        """Restate's ``SubscriptionResponse``; ``own_cluster`` is the name of the cluster Reprise runs on.
        ``options`` are those its consumer runs with, as Restate shows its defaults with the given ones."""
        return {"id": self.id, "source": f"kafka://{self.cluster or own_cluster}/{self.source_topic}",
                "sink": f"service://{self.service}/{self.handler}", "options": self.consumer_options(namespace)}


DEFAULT_OFFSET_RESET = "earliest"  # a new subscription reads its topic from the start unless told otherwise
# Reprise's commit discipline (a source offset is committed once its Invoke is acknowledged) needs these
ENGINE_OPTIONS = frozenset({"enable.auto.commit", "enable.auto.offset.store"})


def options_problem(options: dict[str, str]) -> str | None:
    """Why a subscription's ``options`` cannot be used; None if they can."""
    fixed = sorted(ENGINE_OPTIONS & set(options))
    if fixed:
        return (f"option '{fixed[0]}' cannot be set: a subscription commits a source offset only once Kafka "
                "acknowledged the invocation it became")
    return None


def subscription_id(topic: str, service: str, handler: str, cluster: str | None = None,
                    options: dict[str, str] | None = None) -> str:
    """Restate's form (``sub_1`` and a base62 u128: its CLI parses ids), derived from (cluster, topic,
    target, options): the same subscription has the same id."""
    source = f"{cluster or ''}\0{topic}\0{service}\0{handler}"
    if options:  # (none: the id a subscription had before options were kept)
        source += "\0" + "\0".join(f"{k}={v}" for k, v in sorted(options.items()))
    return resource_id("sub", int.from_bytes(hashlib.sha256(source.encode()).digest()[:16], "big"))


class SubscriptionRegistry:
    """The subscriptions and the registered Kafka clusters (engine/kafka_clusters.py), both records of
    the subscriptions topic."""

    def __init__(self, cfg: Config) -> None:
        self._cfg = cfg
        self._subs: dict[str, Subscription] = {}
        self._clusters: dict[str, KafkaCluster] = {}
        self._changed = threading.Condition()
        self._view = TopicView(cfg, cfg.subscriptions_topic, "Subscription", self._on_record, also=("KafkaCluster",))
        self._producer: Producer | None = None

    def start(self, timeout: float = 30.0) -> None:
        self._view.start(timeout)

    def stop(self) -> None:
        self._view.stop()

    def loaded(self) -> bool:
        """Every subscription on the topic at start was read (readiness)."""
        return self._view.loaded()

    def _on_record(self, key: bytes, record: dict[str, Any] | None) -> None:
        name = key.decode()
        with self._changed:
            if name.startswith(KEY_PREFIX):
                if record is None:
                    self._clusters.pop(name[len(KEY_PREFIX):], None)
                else:
                    self._clusters[record["name"]] = KafkaCluster(record["name"], dict(record["properties"]),
                                                                  record["created_ms"])
            elif record is None:
                self._subs.pop(name, None)
            else:
                self._subs[record["id"]] = Subscription(**{**record, "options": dict(record.get("options") or {})})
            self._changed.notify_all()

    def all(self) -> list[Subscription]:
        with self._changed:
            return sorted(self._subs.values(), key=lambda s: s.created_ms)

    def get(self, sub_id: str) -> Subscription | None:
        with self._changed:
            return self._subs.get(sub_id)

    def _write(self, key: str, kind: str, record: dict[str, Any] | None, read_back: Callable[[], bool],
               timeout: float) -> None:
        """Write a record (None: a tombstone) and wait until this process's view shows it (``read_back``)."""
        if self._producer is None:
            self._producer = Producer(producer_config(self._cfg))
        if record is None:
            self._producer.produce(self._cfg.subscriptions_topic, key=key.encode(), value=None, partition=0)
        else:
            produce_record(self._producer, self._cfg.subscriptions_topic, 0, kind, record, key=key.encode())
        if self._producer.flush(timeout) != 0:
            raise TimeoutError("subscription record not acknowledged by Kafka")
        deadline = time.monotonic() + timeout
        with self._changed:
            while not read_back():
                if not self._changed.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError("subscription record not read back from Kafka")

    def create(self, topic: str, service: str, handler: str, cluster: str | None = None,
               options: dict[str, str] | None = None) -> tuple[Subscription, bool]:
        """(the subscription, whether it is new); ``cluster`` names a registered cluster (None: the own)."""
        options = dict(options or {})
        existing = next((s for s in self.all() if (s.cluster, s.source_topic, s.service, s.handler, s.options)
                         == (cluster, topic, service, handler, options)), None)  # (created under an older id form too)
        if existing is not None:
            return existing, False
        sub_id = subscription_id(topic, service, handler, cluster, options)
        sub = Subscription(sub_id, topic, service, handler, now_ms(), cluster, options)
        self._write(sub_id, "Subscription", sub.__dict__, lambda: sub_id in self._subs, 15.0)
        return sub, True

    def delete(self, sub_id: str) -> bool:
        if self.get(sub_id) is None:
            return False
        self._write(sub_id, "Subscription", None, lambda: sub_id not in self._subs, 15.0)
        return True

    # -- registered Kafka clusters

    def clusters(self) -> list[KafkaCluster]:
        with self._changed:
            return sorted(self._clusters.values(), key=lambda c: c.name)

    def cluster(self, name: str) -> KafkaCluster | None:
        with self._changed:
            return self._clusters.get(name)

    def put_cluster(self, name: str, properties: dict[str, str], created_ms: int) -> KafkaCluster:
        """Register a cluster, or replace its properties."""
        cluster = KafkaCluster(name, dict(properties), created_ms)
        self._write(KEY_PREFIX + name, "KafkaCluster", {"name": name, "properties": cluster.properties,
                                                        "created_ms": created_ms},
                    lambda: self._clusters.get(name) == cluster, 15.0)
        return cluster

    def delete_cluster(self, name: str) -> None:
        self._write(KEY_PREFIX + name, "KafkaCluster", None, lambda: name not in self._clusters, 15.0)
