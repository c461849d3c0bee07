"""The trust boundary enforced by Kafka: a broker of its own with SASL/PLAIN and the StandardAuthorizer,
and exactly the ACLs docs/kafka.md tells operators to create (parsed from the doc, tests/doc_acls.py).

Namespace ``reprise``, the engine as ``User:reprise`` and a client team as ``User:orders``, as in the
doc. The engine, split into a processor and an ingress, runs with nothing but those ACLs; the client
cannot write (or read) any of the engine's topics, while its command on ``reprise.commands`` runs and
its reply arrives on ``reprise.replies.orders``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from reprise.engine.kafka import produce_record
from reprise.schemas import codec
from tests.acl_broker import ADMIN, client_settings, secured_kafka
from tests.doc_acls import documented_acls
from tests.harness import Engine, Service, call_json, free_port, request
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka

NAMESPACE = "reprise"  # the doc's; the broker is this module's own
USERS = {ADMIN: "admin-secret", "reprise": "engine-secret", "orders": "orders-secret", "halfway": "halfway-secret"}
REPLY_TOPIC = "reprise.replies.orders"  # the client's reply topic, created by the operator
OTHER_REPLY_TOPIC = "reprise.replies.billing"  # another team's
ENGINE_TOPICS = ["log", "changelog", "replies", "deployments", "subscriptions", "dead-letters"]


@dataclass
class Secured:
    bootstrap: str
    home: Path
    engine: Engine  # the ingress
    processor: Engine

    def client(self, user: str, **extra: Any) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, **client_settings(user, USERS[user]), **extra}


def _properties(home: Path, user: str) -> Path:
    """An engine's client.properties: its own principal's SASL settings, nothing more."""
    props = home / f"{user}.properties"
    props.write_text("".join(f"{k}={v}\n" for k, v in client_settings(user, USERS[user]).items()))
    return props


def _created(futures: dict[Any, Any]) -> None:
    for fut in futures.values():
        fut.result(30)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    home = tmp_path_factory.mktemp("acl")
    port = free_port()
    controller_port = next(p for p in iter(free_port, None) if p != port)
    kafka = secured_kafka(home / "broker", port, controller_port, USERS)
    bootstrap = kafka.start(120)
    service = Service(home / "effects", home / "service.log")
    engines: list[Engine] = []
    try:
        (home / "effects").mkdir()
        admin = AdminClient({"bootstrap.servers": bootstrap, **kafka.client_settings})
        _created(admin.create_acls(documented_acls()))  # the operator, as the super user
        _created(admin.create_topics([NewTopic(REPLY_TOPIC, 1, 1), NewTopic(OTHER_REPLY_TOPIC, 1, 1)]))
        billing = Producer({"bootstrap.servers": bootstrap, **kafka.client_settings})
        billing.produce(OTHER_REPLY_TOPIC, b"another team's result")
        assert billing.flush(30) == 0
        env = {"REPRISE_KAFKA_CONFIG": str(_properties(home, "reprise"))}
        service.start()
        ingress = Engine(bootstrap, NAMESPACE, home / "ingress", env=env, role="ingress")
        processor = Engine(bootstrap, NAMESPACE, home / "processor", env=env, role="processor")
        engines += [ingress, processor]
        ingress.start(90)
        processor.start(90)
        ingress.register(service.uri)
        yield Secured(bootstrap, home, ingress, processor)
    finally:
        for e in engines:
            e.kill()
        service.kill()
        kafka.stop()


def _delivery(producer: Producer, topic: str, produce: Any) -> tuple[KafkaError | None, Message | None]:
    """Produce one record with ``produce(on_delivery)``; Kafka's verdict on it."""
    verdict: list[tuple[KafkaError | None, Message | None]] = []
    produce(lambda err, msg: verdict.append((err, msg)))
    producer.flush(30)
    assert verdict, f"no delivery report for the record to {topic}"
    return verdict[0]


def test_an_outsider_cannot_write_any_of_the_engines_topics(secured: Secured) -> None:
    """A forged LeaderEpoch is the record that stopped a partition before claims were hardened; with
    the documented ACLs no record of the client's reaches the log or any other engine topic, nor
    the replies topics (the ingresses', and the client's own: only the engine answers there)."""
    producer = Producer(secured.client("orders", acks="all"))
    forged = {"partition": 0, "epoch": 1 << 40, "owner": "forger", "timestamp_ms": 0}
    landed = []
    for topic in [*(f"{NAMESPACE}.{name}" for name in ENGINE_TOPICS), REPLY_TOPIC]:
        err, msg = _delivery(producer, topic, lambda cb, t=topic: produce_record(
            producer, t, 0, "LeaderEpoch", forged, on_delivery=cb))
        if err is None:
            landed.append(f"{topic}@{msg.offset()}")  # type: ignore[union-attr]
        else:
            assert err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (topic, err)
    assert landed == [], f"forged records landed: {landed}"


def test_an_outsider_cannot_read_the_log_or_another_teams_replies(secured: Secured) -> None:
    """Both topics hold records (every Invoke, and one reply of another team's), so a read that were
    allowed would return them."""
    for topic in (f"{NAMESPACE}.log", OTHER_REPLY_TOPIC):
        consumer = Consumer(secured.client("orders", **{"group.id": f"orders.{uuid.uuid4().hex}",
                                                        "auto.offset.reset": "earliest"}))
        outcome: list[Message] = []
        try:
            consumer.subscribe([topic])
            for _ in range(60):  # up to 30 s
                outcome += consumer.consume(10, 0.5)
                if outcome:
                    break
        finally:
            consumer.close()
        assert outcome, f"neither a record nor a refusal from {topic}"
        err = outcome[0].error()
        assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (
            f"the outsider read {topic}: {[m.value()[:40] for m in outcome if m.error() is None]}")


def test_a_command_from_the_outsider_runs_and_its_reply_arrives(secured: Secured) -> None:
    correlation_id = uuid.uuid4().hex
    replies = Consumer(secured.client("orders", **{"group.id": "orders.acl-test", "enable.auto.commit": False}))
    try:
        low, high = replies.get_watermark_offsets(TopicPartition(REPLY_TOPIC, 0), timeout=10)
        replies.assign([TopicPartition(REPLY_TOPIC, 0, high)])
        producer = Producer(secured.client("orders", acks="all", **{"enable.idempotence": True}))
        command = {"service": "Steps", "handler": "three", "key": None, "body": b'"cmd"',
                   "headers": {"content-type": "application/json"}, "idempotency_key": None,
                   "reply_to": {"topic": REPLY_TOPIC, "correlation_id": correlation_id}, "delay_ms": None}
        topic = f"{NAMESPACE}.commands"
        err, _ = _delivery(producer, topic, lambda cb: producer.produce(
            topic, value=codec.encode("InvokeCommand", command), on_delivery=cb))
        assert err is None, f"the command was refused: {err}"
        reply = None
        for _ in range(120):  # up to 60 s
            for m in replies.consume(10, 0.5):
                assert m.error() is None, m.error()
                rec = codec.decode(*codec.kind_of(m.headers()), m.value())
                if rec["request_id"] == correlation_id:
                    reply, last = rec, m
            if reply is not None:
                break
        assert reply is not None, "no reply on the client's reply topic"
        assert reply["failure"] is None and json.loads(reply["value"]) == "cmd:ABC", reply
        replies.commit(message=last, asynchronous=False)  # the client's group rule covers its offsets
    finally:
        replies.close()


def test_the_engine_works_end_to_end_with_only_its_acls(secured: Secured) -> None:
    assert call_json(secured.engine, "/Steps/three", "http") == (200, "http:ABC")
    assert call_json(secured.engine, "/Counter/acl/add", 2) == (200, 2)
    assert secured.processor.popen is not None and secured.processor.popen.poll() is None
    for e in (secured.engine, secured.processor):
        assert "AUTHORIZATION_FAILED" not in e.output(), e.output()[-3000:]


def test_a_processor_without_its_group_rule_says_so(secured: Secured) -> None:
    """The doc's group rule left out (``User:halfway`` has the topic rule only): the processor cannot
    join ``reprise.processors``. It must say why in its log, not sit there healthy and idle."""
    admin = AdminClient(secured.client(ADMIN))
    _created(admin.create_acls([AclBinding(ResourceType.TOPIC, "reprise.", ResourcePatternType.PREFIXED,
                                           "User:halfway", "*", AclOperation.ALL, AclPermissionType.ALLOW)]))
    processor = Engine(secured.bootstrap, NAMESPACE, secured.home / "halfway", role="processor",
                       env={"REPRISE_KAFKA_CONFIG": str(_properties(secured.home, "halfway"))})
    try:
        processor.start(90)
        wait_until(lambda: "GROUP_AUTHORIZATION_FAILED" in processor.output(), 60, "the denied group in the log")
        assert "docs/kafka.md" in processor.output()
        status, _, body = request(processor.admin + "/health/ready", method="GET")
        assert status == 503 and b"no partitions assigned" in body, (status, body)
    finally:
        processor.kill()


def test_the_python_kafka_client_works_with_the_clients_acls(secured: Secured, monkeypatch: pytest.MonkeyPatch) -> None:
    """reprise.engine.client.KafkaClient, given the client's SASL settings the way every Reprise command
    takes them (``REPRISE_KAFKA_CONFIG``), calls through the commands topic with only its rules."""
    from reprise.engine.client import KafkaClient

    monkeypatch.setenv("REPRISE_KAFKA_CONFIG", str(_properties(secured.home, "orders")))
    client = KafkaClient(secured.bootstrap, namespace=NAMESPACE, reply_topic=REPLY_TOPIC)
    try:
        reply = client.call("Steps", "three", b'"kc"', headers={"content-type": "application/json"})
        assert reply.ok and json.loads(reply.value or b"null") == "kc:ABC", reply
    finally:
        client.close()
