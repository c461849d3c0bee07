"""Runs Kafka subscriptions: each record of a user topic becomes an Invoke on the log.

Per subscription, a consumer in its own group reads the topic; a keyed record invokes the object
with that key (records of a key stay in order: same source partition, same log partition, and the
object's inbox keeps arrival order). The source offsets are committed only after Kafka acknowledged
every Invoke of the batch, so a crash re-delivers rather than loses (an at-least-once edge: a record
whose Invoke was written just before a crash is invoked again).
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import Producer

from engine.config import Config
from engine.ids import InvocationId
from engine.kafka import log_partitions, new_consumer, next_batch, produce_record, producer_config
from engine.registry import Registry
from engine.subscriptions import Subscription, SubscriptionRegistry

log = logging.getLogger(__name__)


class SubscriptionRunner:
    def __init__(self, cfg: Config, registry: Registry, subscriptions: SubscriptionRegistry) -> None:
        self._cfg = cfg
        self._registry = registry
        self._subscriptions = subscriptions
        self._partitions = log_partitions(cfg)
        self._running: dict[str, threading.Event] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="subscriptions", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for ev in self._running.values():
            ev.set()
        self._thread.join(5)

    def _supervise(self) -> None:
        """Start a worker per new subscription, stop the workers of deleted ones."""
        while not self._stop.is_set():
            wanted = {s.id: s for s in self._subscriptions.all()}
            for sub_id in set(self._running) - set(wanted):
                self._running.pop(sub_id).set()
            for sub_id, sub in wanted.items():
                if sub_id not in self._running:
                    stop = threading.Event()
                    self._running[sub_id] = stop
                    threading.Thread(target=self._run, args=(sub, stop), name=f"sub-{sub_id}", daemon=True).start()
            self._stop.wait(0.5)

    def _run(self, sub: Subscription, stop: threading.Event) -> None:
        consumer = new_consumer(self._cfg, **{"group.id": f"{self._cfg.namespace}.{sub.id}", "fetch.wait.max.ms": 50})
        producer = Producer(producer_config(self._cfg))
        consumer.subscribe([sub.source_topic])
        try:
            while not stop.is_set():
                msgs = [m for m in next_batch(consumer, 500, 0.2) if m.error() is None]
                if not msgs:
                    continue
                svc = self._registry.service(sub.service)
                kind = svc.handlers[sub.handler].ty if svc and sub.handler in svc.handlers else None
                keyed = bool(svc and svc.keyed)
                for m in msgs:
                    if keyed and not m.key():
                        log.warning("subscription %s: %s/%d/%d has no key, but %s needs one: skipped", sub.id,
                                    m.topic(), m.partition(), m.offset(), sub.service)
                        continue
                    key = m.key().decode("utf-8", "replace") if keyed else None
                    inv = InvocationId.new(key) if key is not None else InvocationId.random()
                    produce_record(producer, self._cfg.log_topic, inv.partition(self._partitions), "Invoke", {
                        "invocation_id": str(inv), "service": sub.service, "handler": sub.handler, "key": key,
                        "handler_kind": kind, "input": m.value() or b"",
                        "headers": [{"name": k, "value": v.decode("utf-8", "replace")}
                                    for k, v in (m.headers() or []) if v is not None],
                        "idempotency_key": None, "caller": None, "reply_to": None, "ack_to": None,
                        "execute_at_ms": None, "created_ms": int(time.time() * 1000)})
                while producer.flush(5) != 0 and not stop.is_set():
                    log.warning("subscription %s: waiting for Kafka to acknowledge its Invokes", sub.id)
                consumer.commit(asynchronous=False)  # only now: every Invoke of the batch is durable
        except Exception:
            log.exception("subscription %s (%s -> %s/%s) failed", sub.id, sub.source_topic, sub.service, sub.handler)
        finally:
            consumer.close()


