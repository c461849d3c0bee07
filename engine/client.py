"""A small Kafka-native client: put an Invoke command on the log, and await its Reply on a topic.

No HTTP: the command goes straight to the partition that owns its key (Kafka's murmur2
partitioner), and the engine answers on the reply topic the command names.

    client = KafkaClient("127.0.0.1:9092", reply_topic="my-replies")
    reply = client.call("Greeter", "greet", b'"Ada"')        # waits for the Reply record
    invocation_id = client.send("Counter", "add", b"1", key="c1")   # returns once Kafka acked it
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaException, Producer, TopicPartition

from engine.config import Config
from engine.ids import InvocationId, idempotent_invocation_id, workflow_run_id
from engine.kafka import high_watermark, log_partitions, new_consumer, next_batch, produce_record, producer_config
from schemas import codec


@dataclass(frozen=True)
class Reply:
    invocation_id: str
    value: bytes | None
    failure: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return self.failure is None


class KafkaClient:
    def __init__(self, bootstrap: str, namespace: str = "reprise", reply_topic: str | None = None) -> None:
        self.cfg = Config.from_env(bootstrap=bootstrap, namespace=namespace)
        self.partitions = log_partitions(self.cfg)
        self.reply_topic = reply_topic
        self.client_id = f"kafka-client-{uuid.uuid4().hex[:12]}"
        self._producer = Producer(producer_config(self.cfg))
        self._consumer: Consumer | None = None

    def _command(self, service: str, handler: str, payload: bytes, key: str | None, handler_kind: str | None,
                 idempotency_key: str | None, headers: dict[str, str] | None,
                 reply: bool) -> tuple[InvocationId, dict[str, Any]]:
        if handler_kind == "WORKFLOW" and key is not None:
            inv = workflow_run_id(service, key)
        elif idempotency_key is not None:
            inv = idempotent_invocation_id(service, key, handler, idempotency_key)
        else:
            inv = InvocationId.new(key) if key is not None else InvocationId.random()
        record = {
            "invocation_id": str(inv), "service": service, "handler": handler, "key": key,
            "handler_kind": handler_kind, "input": payload,
            "headers": [{"name": k, "value": v} for k, v in (headers or {}).items()],
            "idempotency_key": idempotency_key, "caller": None, "ack_to": None, "execute_at_ms": None,
            "created_ms": int(time.time() * 1000),
            "reply_to": {"topic": self.reply_topic, "ingress_id": self.client_id, "request_id": str(inv)}
            if reply else None,
        }
        return inv, record

    def _produce(self, inv: InvocationId, record: dict[str, Any], timeout: float) -> None:
        errors: list[Any] = []
        produce_record(self._producer, self.cfg.log_topic, inv.partition(self.partitions), "Invoke", record,
                       key=(record["key"] or "").encode() or None,
                       on_delivery=lambda err, _msg: errors.append(err) if err else None)
        if self._producer.flush(timeout) != 0 or errors:
            raise KafkaException(errors[0] if errors else "Invoke not acknowledged in time")

    def send(self, service: str, handler: str, payload: bytes = b"", key: str | None = None,
             handler_kind: str | None = None, idempotency_key: str | None = None,
             headers: dict[str, str] | None = None, timeout: float = 30.0) -> str:
        """Produce the command; returns its invocation id once Kafka acknowledged it."""
        inv, record = self._command(service, handler, payload, key, handler_kind, idempotency_key, headers, False)
        self._produce(inv, record, timeout)
        return str(inv)

    def call(self, service: str, handler: str, payload: bytes = b"", key: str | None = None,
             handler_kind: str | None = None, idempotency_key: str | None = None,
             headers: dict[str, str] | None = None, timeout: float = 60.0) -> Reply:
        """Produce the command naming the reply topic, and wait for its Reply record there."""
        if self.reply_topic is None:
            raise ValueError("call() needs a reply_topic")
        self._follow_replies()
        inv, record = self._command(service, handler, payload, key, handler_kind, idempotency_key, headers, True)
        self._produce(inv, record, timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in next_batch(self._consumer, 100, 0.2):  # type: ignore[arg-type]
                if m.error() is not None:
                    continue
                kind, version = codec.kind_of(m.headers())
                rec = codec.decode(kind, version, m.value())
                if rec["ingress_id"] == self.client_id and rec["request_id"] == str(inv):
                    return Reply(rec["invocation_id"], rec["value"], rec["failure"])
        raise TimeoutError(f"no reply for {inv} within {timeout}s")

    def _follow_replies(self) -> None:
        if self._consumer is not None:
            return
        self._consumer = new_consumer(self.cfg, **{"group.id": self.client_id})
        md = self._consumer.list_topics(self.reply_topic, timeout=10).topics[self.reply_topic]
        if md.error is not None:
            raise KafkaException(md.error)
        assignment = []
        for p in md.partitions:
            end = high_watermark(self._consumer, self.reply_topic, p)
            assignment.append(TopicPartition(self.reply_topic, p, end if end >= 0 else OFFSET_END))
        self._consumer.assign(assignment)

    def close(self) -> None:
        self._producer.flush(10)
        if self._consumer is not None:
            self._consumer.close()
