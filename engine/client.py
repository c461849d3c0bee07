"""A small Kafka-native client: put an Invoke command on the commands topic, await its Reply on a topic.

No HTTP: the command goes to ``<namespace>.commands`` (schemas/command_invoke.v1.avsc); the engine
derives the invocation id, routes it to its log partition, and answers on the reply topic the command
names (one the operator allows: by default ``<namespace>.replies.*``).

    client = KafkaClient("127.0.0.1:9092", reply_topic="reprise.replies.mine")
    reply = client.call("Greeter", "greet", b'"Ada"')        # waits for the Reply record
    client.send("Counter", "add", b"1", key="c1")             # returns once Kafka acked the command
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaException, Producer, TopicPartition

from reprise.engine.config import Config
from reprise.engine.kafka import high_watermark, new_consumer, next_batch, producer_config
from reprise.schemas import codec


@dataclass(frozen=True)
class Reply:
    invocation_id: str  # "" when the engine refused the command (failure says why)
    value: bytes | None
    failure: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return self.failure is None


def reply_for(m: Any, correlation_id: str) -> Reply | None:
    """The Reply a consumed record carries for this command, else None. Anyone allowed to write the
    reply topic can put anything there: a record that is not a decodable Reply is skipped, never raised."""
    if m.error() is not None:
        return None
    try:
        kind, version = codec.kind_of(m.headers())
        if kind != "Reply":
            return None
        rec = codec.decode(kind, version, m.value() or b"")
    except Exception:  # noqa: BLE001 - whatever is wrong with it, it is not this command's reply
        return None
    if rec.get("request_id") != correlation_id:
        return None
    return Reply(rec["invocation_id"], rec["value"], rec["failure"])


class KafkaClient:
    def __init__(self, bootstrap: str, namespace: str = "reprise", reply_topic: str | None = None) -> None:
        self.cfg = Config.from_env(bootstrap=bootstrap, namespace=namespace)
        self.reply_topic = reply_topic
        self._producer = Producer(producer_config(self.cfg))
        self._consumer: Consumer | None = None

    def _produce(self, command: dict[str, Any], timeout: float) -> None:
        errors: list[Any] = []
        self._producer.produce(self.cfg.commands_topic, value=codec.encode("InvokeCommand", command),
                               key=(command["key"] or "").encode() or None,
                               on_delivery=lambda err, _msg: errors.append(err) if err else None)
        if self._producer.flush(timeout) != 0 or errors:
            raise KafkaException(errors[0] if errors else "command not acknowledged in time")

    @staticmethod
    def _command(service: str, handler: str, payload: bytes, key: str | None, idempotency_key: str | None,
                 headers: dict[str, str] | None, reply_to: dict[str, str] | None,
                 delay_ms: int | None) -> dict[str, Any]:
        return {"service": service, "handler": handler, "key": key, "body": payload, "headers": headers or {},
                "idempotency_key": idempotency_key, "reply_to": reply_to, "delay_ms": delay_ms}

    def send(self, service: str, handler: str, payload: bytes = b"", key: str | None = None,
             idempotency_key: str | None = None, headers: dict[str, str] | None = None,
             delay_ms: int | None = None, timeout: float = 30.0) -> None:
        """Produce the command; returns once Kafka acknowledged it (the engine then routes it)."""
        self._produce(self._command(service, handler, payload, key, idempotency_key, headers, None, delay_ms), timeout)

    def call(self, service: str, handler: str, payload: bytes = b"", key: str | None = None,
             idempotency_key: str | None = None, headers: dict[str, str] | None = None,
             timeout: float = 60.0) -> Reply:
        """Produce the command naming the reply topic, and wait for its Reply record there."""
        if self.reply_topic is None:
            raise ValueError("call() needs a reply_topic")
        self._follow_replies(self.reply_topic)
        correlation_id = uuid.uuid4().hex
        self._produce(self._command(service, handler, payload, key, idempotency_key, headers,
                                    {"topic": self.reply_topic, "correlation_id": correlation_id}, None), timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in next_batch(self._consumer, 100, 0.2):  # type: ignore[arg-type]
                reply = reply_for(m, correlation_id)
                if reply is not None:
                    return reply
        raise TimeoutError(f"no reply for command {correlation_id} within {timeout}s")

    def _follow_replies(self, reply_topic: str) -> None:
        if self._consumer is not None:
            return
        self._consumer = new_consumer(self.cfg, **{"group.id": f"kafka-client-{uuid.uuid4().hex[:12]}"})
        md = self._consumer.list_topics(reply_topic, timeout=10).topics[reply_topic]
        if md.error is not None:
            raise KafkaException(md.error)
        assignment = []
        for p in md.partitions:
            end = high_watermark(self._consumer, reply_topic, p)
            assignment.append(TopicPartition(reply_topic, p, end if end >= 0 else OFFSET_END))
        self._consumer.assign(assignment)

    def close(self) -> None:
        self._producer.flush(10)
        if self._consumer is not None:
            self._consumer.close()
