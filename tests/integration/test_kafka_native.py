"""Kafka-native clients: commands straight onto the log, replies on a topic, dead letters."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from deploy.kafka.local import LocalKafka
from engine.client import KafkaClient
from engine.partitioning import partition_for_key
from schemas import codec
from tests.harness import ROOT, Engine, post
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka


def namespace_of(engine: Engine) -> str:
    return engine.args[engine.args.index("--namespace") + 1]


def make_topic(bootstrap: str, name: str, partitions: int = 1) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the topic exists
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


def state(engine: Engine, service: str, key: str) -> dict:
    return json.loads(post(f"{engine.admin}/services/{service}/state/{key}", None, method="GET")[1])["state"]


def test_python_client_call_and_send(engine: Engine, kafka_bootstrap: str) -> None:
    ns = namespace_of(engine)
    client = KafkaClient(kafka_bootstrap, ns, reply_topic=make_topic(kafka_bootstrap, f"{ns}.my-replies", 3))
    try:
        reply = client.call("Steps", "three", b'"kc"')
        assert reply.ok and reply.value == b'"kc:ABC"' and reply.invocation_id.startswith("inv_1")
        failed = client.call("Errors", "terminal", b'"nope"')
        assert failed.failure == {"code": 400, "message": "nope"}
        client.send("Counter", "add", b"5", key="native", handler_kind="EXCLUSIVE")
        wait_until(lambda: state(engine, "Counter", "native") == {"value": "5"}, 30, "the send")
    finally:
        client.close()


def test_python_example_without_the_engine_package(engine: Engine, kafka_bootstrap: str) -> None:
    ns = namespace_of(engine)
    topic = make_topic(kafka_bootstrap, f"{ns}.example-replies")
    out = subprocess.run([sys.executable, "examples/kafka/produce_invoke.py", "--bootstrap", kafka_bootstrap,
                          "--namespace", ns, "--service", "Steps", "--handler", "three", "--input", '"ex"',
                          "--reply-topic", topic], capture_output=True, text=True, cwd=ROOT, timeout=90)
    assert out.returncode == 0, out.stderr
    assert 'reply for inv_1' in out.stdout and '"ex:ABC"' in out.stdout


def test_java_producer_with_hand_encoded_avro(engine: Engine, kafka_bootstrap: str) -> None:
    lib = LocalKafka().resolve()
    out = subprocess.run(["java", "-cp", f"{lib}/*", "examples/kafka/InvokeProducer.java", kafka_bootstrap,
                          f"{namespace_of(engine)}.log", "Counter", "add", "from-java", "7"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"acknowledged at partition {partition_for_key('from-java', 4)}" in out.stdout
    wait_until(lambda: state(engine, "Counter", "from-java") == {"value": "7"}, 30, "the Java command")


def test_librdkafka_murmur2_partitioner_agrees_with_ours(kafka_bootstrap: str, namespace: str) -> None:
    topic = make_topic(kafka_bootstrap, f"{namespace}.routing", 8)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    got: dict[str, int] = {}
    for i in range(50):
        key = f"key-{i}-ü"
        producer.produce(topic, value=b"", key=key.encode(), on_delivery=lambda e, m, k=key: got.__setitem__(
            k, m.partition()))
    producer.flush(30)
    assert got == {k: partition_for_key(k, 8) for k in got} and len(got) == 50


def test_malformed_records_go_to_dead_letters_and_the_partition_moves_on(engine: Engine,
                                                                         kafka_bootstrap: str) -> None:
    ns = namespace_of(engine)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    bad = [
        (b"not avro at all", []),
        (b"\xff\xff\xff", [("reprise-kind", b"Invoke"), ("reprise-version", b"1")]),
        (b"", [("reprise-kind", b"Nope"), ("reprise-version", b"1")]),
    ]
    for value, headers in bad:
        producer.produce(f"{ns}.log", value=value, headers=headers, partition=0)
    producer.flush(30)
    client = KafkaClient(kafka_bootstrap, ns)
    bogus = codec.encode("Invoke", {"invocation_id": "inv_1bogus", "service": "S", "handler": "h", "input": b""})
    producer.produce(f"{ns}.log", partition=0, value=bogus, headers=codec.headers_for("Invoke"))
    producer.flush(30)
    key = next(f"k{i}" for i in range(100) if partition_for_key(f"k{i}", 4) == 0)
    client.send("Counter", "add", b"2", key=key, handler_kind="EXCLUSIVE")  # after the bad ones, same partition
    wait_until(lambda: state(engine, "Counter", key) == {"value": "2"}, 30, "the good record behind the bad ones")
    client.close()
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "dlq-test"})
    consumer.assign([TopicPartition(f"{ns}.dead-letters", 0, 0)])
    reasons = []
    deadline = time.monotonic() + 30
    while len(reasons) < 4 and time.monotonic() < deadline:
        for m in consumer.consume(10, 0.5):
            if m.error() is None:
                reasons.append(dict(m.headers())["reprise-dead-letter-reason"].decode())
    consumer.close()
    assert len(reasons) == 4, reasons
    assert "lacks the reprise-kind" in reasons[0]
    assert "malformed Invoke" in reasons[1]
    assert "unknown record kind 'Nope'" in reasons[2]
    assert "malformed invocation id" in reasons[3]


