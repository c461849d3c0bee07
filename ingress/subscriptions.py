"""Runs Kafka subscriptions: each record of a user topic becomes an Invoke on the log.

Per subscription, a consumer in its own group reads the topic; a keyed record invokes the object
with that key (records of a key stay in order: same source partition, same log partition, and the
object's inbox keeps arrival order). A source offset is committed only after Kafka acknowledged the
record's Invoke (ingress/subscription_batch.py), so a crash or a failed delivery re-delivers rather
than loses (an at-least-once edge: a record whose Invoke was written just before is invoked again); a
record that can never be an Invoke is dead-lettered. A worker that fails is started again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, Producer
from prometheus_client import Counter

from reprise.engine.clock import now_ms
from reprise.engine.config import Config
from reprise.engine.consumed import ConsumedRecord
from reprise.engine.critical import critical_thread
from reprise.engine.ids import InvocationId
from reprise.engine.kafka import log_partitions, new_consumer, next_batch, produce_record, producer_config
from reprise.engine.kafka_clusters import consumer_settings
from reprise.engine.registry import Registry
from reprise.engine.subscriptions import Subscription, SubscriptionRegistry
from reprise.ingress.subscription_batch import OnDelivery, Refused, forward_batch
from reprise.schemas.invoke import new_invoke

log = logging.getLogger(__name__)

RESTART_DELAY_S = 5.0
_ORPHAN: dict[str, str] = {"": "a subscription's registered cluster is gone"}  # compared by identity
Source = dict[str, str] | None  # a registered cluster's properties; None: the cluster Reprise runs on
WORKER_FAILURES = Counter("reprise_subscription_failures_total", "Subscription workers that failed (and were "
                          "started again)", ["subscription"])
DEAD_LETTERED = Counter("reprise_subscription_dead_letters_total", "Source records dead-lettered", ["subscription"])
RETRIED = Counter("reprise_subscription_retries_total", "Batches forwarded again after Kafka did not acknowledge "
                  "every Invoke", ["subscription"])


class SubscriptionRunner:
    def __init__(self, cfg: Config, registry: Registry, subscriptions: SubscriptionRegistry) -> None:
        self._cfg = cfg
        self._registry = registry
        self._subscriptions = subscriptions
        self._partitions = log_partitions(cfg)
        self._running: dict[str, threading.Event] = {}
        self._stop = threading.Event()
        self._restart_at: dict[str, float] = {}  # a failed subscription's worker starts again from then
        self._sources: dict[str, Source] = {}  # the cluster properties each worker was started with
        self._orphans: set[str] = set()  # subscriptions whose cluster is not registered (warned about once)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = critical_thread(self._supervise, "subscriptions")

    def stop(self) -> None:
        self._stop.set()
        for ev in self._running.values():
            ev.set()
        if self._thread is not None:
            self._thread.join(5)

    def _supervise(self) -> None:
        """Start a worker per new subscription, stop the workers of deleted ones (and of those whose
        registered cluster changed or went away), and start again (after a pause) a worker that failed."""
        while not self._stop.is_set():
            wanted = {s.id: (s, self._source_of(s)) for s in self._subscriptions.all()}
            for sub_id in set(self._running):
                if sub_id not in wanted or wanted[sub_id][1] != self._sources.get(sub_id):
                    self._running.pop(sub_id).set()
                    self._sources.pop(sub_id, None)
            now = time.monotonic()
            for sub_id, (sub, source) in wanted.items():
                if sub_id not in self._running and self._restart_at.get(sub_id, 0.0) <= now:
                    if source is _ORPHAN:
                        if sub_id not in self._orphans:
                            self._orphans.add(sub_id)
                            log.warning("subscription %s reads from Kafka cluster '%s', which is not registered "
                                        "(any more): it waits until that cluster is registered", sub_id, sub.cluster)
                        continue
                    self._orphans.discard(sub_id)
                    stop = threading.Event()
                    self._running[sub_id], self._sources[sub_id] = stop, source
                    threading.Thread(target=self._run, args=(sub, source, stop), name=f"sub-{sub_id}",
                                     daemon=True).start()
            self._stop.wait(0.5)

    def _source_of(self, sub: Subscription) -> Source:
        """The properties of the registered cluster ``sub`` reads from; None: the cluster Reprise runs on;
        ``_ORPHAN``: a cluster no longer registered."""
        if sub.cluster is None:
            return None
        cluster = self._subscriptions.cluster(sub.cluster)
        return _ORPHAN if cluster is None else cluster.properties

    def _run(self, sub: Subscription, source: Source, stop: threading.Event) -> None:
        try:
            self._forward(sub, source, stop)
        except Exception:  # noqa: BLE001 - the supervisor starts the subscription again
            WORKER_FAILURES.labels(sub.id).inc()
            log.exception("subscription %s (%s -> %s/%s) failed; restarting it in %.0f s", sub.id, sub.source_topic,
                          sub.service, sub.handler, RESTART_DELAY_S)
            self._restart_at[sub.id] = time.monotonic() + RESTART_DELAY_S
        finally:
            if self._running.get(sub.id) is stop:
                self._running.pop(sub.id, None)

    def _forward(self, sub: Subscription, source: Source, stop: threading.Event) -> None:
        # its options (auto.offset.reset, group.id, ...) over the engine's, under the commit discipline's
        extra = {"fetch.wait.max.ms": 50, **sub.consumer_options(self._cfg.namespace),
                 "enable.auto.commit": False, "enable.auto.offset.store": False}
        consumer = new_consumer(self._cfg, **extra) if source is None else Consumer(consumer_settings(source, **extra))
        producer = Producer(producer_config(self._cfg))
        consumer.subscribe([sub.source_topic])
        try:
            while not stop.is_set():
                msgs = [m for m in next_batch(consumer, 500, 0.2) if m.error() is None]
                if not msgs:
                    continue
                out = forward_batch(producer, msgs, self._invoke_of(sub, producer), self._cfg.dead_letter_topic,
                                    stop.is_set)
                DEAD_LETTERED.labels(sub.id).inc(out.dead_lettered)
                consumer.commit(offsets=out.commit, asynchronous=False)  # only what Kafka acknowledged
                if out.rewind:  # forwarded again, after a pause: the cause (broker, network) may pass
                    RETRIED.labels(sub.id).inc()
                    log.warning("subscription %s: Kafka did not acknowledge every Invoke; forwarding again from %s",
                                sub.id, ", ".join(f"{tp.partition}@{tp.offset}" for tp in out.rewind))
                    for tp in out.rewind:
                        consumer.seek(tp)
                    stop.wait(1.0)
        finally:
            consumer.close()

    def _invoke_of(self, sub: Subscription, producer: Producer) -> Callable[[ConsumedRecord, OnDelivery], None]:
        svc = self._registry.service(sub.service)
        kind = svc.handlers[sub.handler].ty if svc and sub.handler in svc.handlers else None
        keyed = bool(svc and svc.keyed)

        def produce_invoke(m: ConsumedRecord, on_delivery: OnDelivery) -> None:
            if keyed and not m.key():
                raise Refused(f"no key, but {sub.service} needs one")
            key = (m.key() or b"").decode("utf-8", "replace") if keyed else None
            inv = InvocationId.new(key) if key is not None else InvocationId.random()
            invoke = new_invoke(
                invocation_id=str(inv), service=sub.service, handler=sub.handler, key=key, handler_kind=kind,
                input=m.value() or b"", headers=[{"name": k, "value": v.decode("utf-8", "replace")}
                                                 for k, v in (m.headers() or []) if v is not None],
                created_ms=now_ms(), sender_id=sub.id)
            produce_record(producer, self._cfg.log_topic, inv.partition(self._partitions), "Invoke", invoke,
                           on_delivery=on_delivery)

        return produce_invoke
