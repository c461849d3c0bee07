"""Kafka-native clients: commands on the commands topic, replies on a topic, dead letters."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from reprise.deploy.kafka.local import LocalKafka
from reprise.engine.client import KafkaClient
from reprise.engine.partitioning import partition_for_key
from reprise.schemas import codec
from tests.harness import ROOT, Engine, call_json, count, log_kinds, post
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


def read_topic(bootstrap: str, topic: str, want: int, timeout: float = 45.0) -> list[Message]:
    """The records of a topic from its start, until ``want`` of them came or ``timeout`` passed."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests", "enable.auto.commit": False})
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += [m for m in consumer.consume(50, 0.5) if m.error() is None]
    consumer.close()
    return got


def command(service: str, handler: str, body: bytes = b"", key: str | None = None, **more: Any) -> bytes:
    return codec.encode("InvokeCommand", {"service": service, "handler": handler, "key": key, "body": body,
                                          "headers": {}, "idempotency_key": None, "reply_to": None,
                                          "delay_ms": None, **more})


@pytest.fixture(scope="module")
def shared_engine(module_engine: Engine) -> Engine:
    """One engine for the tests that look only at keys, reply topics and idempotency keys of their own;
    those that read a whole topic (dead letters, the log) or add a router start their own (``engine``)."""
    return module_engine


def test_python_client_call_and_send(shared_engine: Engine, kafka_bootstrap: str) -> None:
    ns = namespace_of(shared_engine)
    client = KafkaClient(kafka_bootstrap, ns, reply_topic=make_topic(kafka_bootstrap, f"{ns}.replies.mine", 3))
    try:
        reply = client.call("Steps", "three", b'"kc"')
        assert reply.ok and reply.value == b'"kc:ABC"' and reply.invocation_id.startswith("inv_1")
        failed = client.call("Errors", "terminal", b'"nope"')
        assert failed.failure == {"code": 400, "message": "nope"}
        client.send("Counter", "add", b"5", key="native")
        wait_until(lambda: state(shared_engine, "Counter", "native") == {"value": "5"}, 30, "the send")
    finally:
        client.close()


def test_the_same_idempotency_key_twice_runs_once_with_one_result_for_both(shared_engine: Engine,
                                                                           kafka_bootstrap: str) -> None:
    ns = namespace_of(shared_engine)
    client = KafkaClient(kafka_bootstrap, ns, reply_topic=make_topic(kafka_bootstrap, f"{ns}.replies.idem"))
    try:
        first = client.call("Counter", "add", b"3", key="idem", idempotency_key="order-1")
        again = client.call("Counter", "add", b"3", key="idem", idempotency_key="order-1")
        assert first.ok and again.ok and first.value == again.value == b"3"
        assert first.invocation_id == again.invocation_id
        # the same key over HTTP names the same invocation: the engine, not the producer, derives the id
        status, body = call_json(shared_engine, "/restate/invocation/Counter/idem/add/order-1/output")
        assert (status, body) == (200, 3)
        assert state(shared_engine, "Counter", "idem") == {"value": "3"}
    finally:
        client.close()


def test_a_keyed_command_on_any_commands_partition_reaches_its_object(shared_engine: Engine,
                                                                      kafka_bootstrap: str) -> None:
    ns = namespace_of(shared_engine)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    partitions = len(producer.list_topics(f"{ns}.commands", timeout=10).topics[f"{ns}.commands"].partitions)
    assert partitions > 1
    for p in range(partitions):  # every partition, whichever one a producer's partitioner would pick
        producer.produce(f"{ns}.commands", partition=p, value=command("Counter", "add", b"1", key="spread"))
    assert producer.flush(30) == 0
    wait_until(lambda: state(shared_engine, "Counter", "spread") == {"value": str(partitions)}, 45, "every command")
    assert call_json(shared_engine, "/Counter/spread/get") == (200, partitions)


def test_commands_the_engine_cannot_accept_are_dead_lettered_with_an_error_reply(engine: Engine,
                                                                                  kafka_bootstrap: str) -> None:
    ns = namespace_of(engine)
    replies = make_topic(kafka_bootstrap, f"{ns}.replies.bad")
    producer = Producer({"bootstrap.servers": kafka_bootstrap})

    def reply_to(cid: str, topic: str = replies) -> dict[str, str]:
        return {"topic": topic, "correlation_id": cid}

    bad = [
        command("Nope", "add", reply_to=reply_to("unknown-service")),
        command("Counter", "nope", key="k", reply_to=reply_to("unknown-handler")),
        command("Counter", "add", b"1", reply_to=reply_to("no-key")),
        command("Steps", "three", b'"x"', key="k", reply_to=reply_to("key-on-a-service")),
        command("Steps", "three", b"{bad", headers={"content-type": "application/json"},
                reply_to=reply_to("bad-json")),
        command("Steps", "three", b'"x"', delay_ms=-5, reply_to=reply_to("bad-delay")),
        command("Steps", "three", b'"x"', idempotency_key=" ", reply_to=reply_to("empty-idempotency-key")),
        command("Steps", "three", b'"x"', reply_to=reply_to("to-deployments", f"{ns}.deployments")),
        command("Steps", "three", b'"x"', reply_to=reply_to("not-allowed", f"{ns}.elsewhere")),
        b"\xff\xff\xff not a command",
    ]
    for value in bad:
        producer.produce(f"{ns}.commands", value=value, partition=0)
    producer.produce(f"{ns}.commands", value=command("Counter", "add", b"2", key="after"), partition=0)
    assert producer.flush(30) == 0
    wait_until(lambda: state(engine, "Counter", "after") == {"value": "2"}, 45, "the good command behind the bad")

    letters = read_topic(kafka_bootstrap, f"{ns}.dead-letters", len(bad))
    reasons = [dict(m.headers())["reprise-dead-letter-reason"].decode() for m in letters]
    assert len(reasons) == len(bad), reasons
    for want in ("404 service 'Nope' not found", "404 handler 'Counter/nope' not found",
                 "400 virtual_object 'Counter' needs a key", "400 service 'Steps' is not keyed",
                 "400 malformed JSON body", "400 delay_ms -5 is out of range", "400 the idempotency key is empty",
                 "one of the engine's or Kafka's own topics", "is not allowed: expected a topic matching",
                 "400 malformed command"):
        assert any(want in r for r in reasons), (want, reasons)
    assert all(dict(m.headers())["reprise-source"].decode().startswith(f"{ns}.commands/0/") for m in letters)
    assert letters[-1].value() == bad[-1]  # the original bytes, for whoever looks into it

    got = {}
    for m in read_topic(kafka_bootstrap, replies, 7):
        reply = codec.decode("Reply", 1, m.value())
        got[reply["request_id"]] = reply["failure"]
    assert got == {
        "unknown-service": {"code": 404, "message": "service 'Nope' not found"},
        "unknown-handler": {"code": 404, "message": "handler 'Counter/nope' not found"},
        "no-key": {"code": 400, "message": "virtual_object 'Counter' needs a key"},
        "key-on-a-service": {"code": 400, "message": "service 'Steps' is not keyed: its commands carry no key"},
        "bad-json": got.get("bad-json"),
        "bad-delay": {"code": 400, "message": "delay_ms -5 is out of range: expected 0 to 31536000000"},
        "empty-idempotency-key": {"code": 400, "message": "the idempotency key is empty"},
    }, got
    assert got["bad-json"]["code"] == 400
    deployments = read_topic(kafka_bootstrap, f"{ns}.deployments", 2, timeout=5)
    assert all(dict(m.headers() or []).get("reprise-kind") != b"Reply" for m in deployments)


def test_a_reply_is_never_written_to_a_topic_that_is_not_allowed(engine: Engine, kafka_bootstrap: str,
                                                                 effects: Path) -> None:
    """The old path, an Invoke straight on the log, names engine topics (and the log's alias) as its
    reply topic: the invocation runs, and the leader writes no Reply there."""
    ns = namespace_of(engine)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    targets = (f"{ns}.deployments", "log", f"{ns}.changelog", f"{ns}.log")
    for i, topic in enumerate(targets):
        producer.produce(f"{ns}.log", partition=0, headers=codec.headers_for("Invoke"), value=codec.encode("Invoke", {
            "invocation_id": None, "service": "Steps", "handler": "three", "input": f'"forged{i}"'.encode(),
            "reply_to": {"topic": topic, "ingress_id": "x", "request_id": topic}}))
    assert producer.flush(30) == 0
    wait_until(lambda: all(count(effects, f"forged{i}.c") == 1 for i in range(len(targets))), 45, "the invocations")
    time.sleep(2)  # their replies would have been shipped by now
    assert "Reply" not in log_kinds(kafka_bootstrap, ns)
    for topic in (f"{ns}.deployments", f"{ns}.changelog"):
        assert all(dict(m.headers() or []).get("reprise-kind") != b"Reply"
                   for m in read_topic(kafka_bootstrap, topic, 10**6, timeout=5)), topic
    answer = call_json(engine, "/Steps/three", "still-fine")
    assert answer == (200, "still-fine:ABC"), answer  # the registry lives


def test_python_example_without_the_engine_package(shared_engine: Engine, kafka_bootstrap: str) -> None:
    ns = namespace_of(shared_engine)
    topic = make_topic(kafka_bootstrap, f"{ns}.replies.example")
    out = subprocess.run([sys.executable, "examples/kafka/produce_invoke.py", "--bootstrap", kafka_bootstrap,
                          "--namespace", ns, "--service", "Steps", "--handler", "three", "--input", '"ex"',
                          "--reply-topic", topic], capture_output=True, text=True, cwd=ROOT, timeout=90)
    assert out.returncode == 0, out.stderr
    assert 'reply for inv_1' in out.stdout and '"ex:ABC"' in out.stdout


def test_java_producer_with_hand_encoded_avro(shared_engine: Engine, kafka_bootstrap: str) -> None:
    lib = LocalKafka().resolve()
    for _ in range(2):  # the same idempotency key twice: it runs once
        out = subprocess.run(["java", "-cp", f"{lib}/*", "examples/kafka/InvokeProducer.java", kafka_bootstrap,
                              f"{namespace_of(shared_engine)}.commands", "Counter", "add", "from-java", "7", "java-1"],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "acknowledged at offset" in out.stdout
    wait_until(lambda: state(shared_engine, "Counter", "from-java") == {"value": "7"}, 30, "the Java command")
    time.sleep(1)
    assert state(shared_engine, "Counter", "from-java") == {"value": "7"}


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


def test_malformed_records_on_the_log_go_to_dead_letters_and_the_partition_moves_on(engine: Engine,
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
    bogus = codec.encode("Invoke", {"invocation_id": "inv_1bogus", "service": "S", "handler": "h", "input": b""})
    producer.produce(f"{ns}.log", partition=0, value=bogus, headers=codec.headers_for("Invoke"))
    key = next(f"k{i}" for i in range(100) if partition_for_key(f"k{i}", 4) == 0)
    producer.produce(f"{ns}.log", partition=0, headers=codec.headers_for("Invoke"), value=codec.encode("Invoke", {
        "invocation_id": None, "service": "Counter", "handler": "add", "key": key, "input": b"2"}))
    producer.flush(30)  # the good one after the bad ones, on the same partition
    wait_until(lambda: state(engine, "Counter", key) == {"value": "2"}, 30, "the good record behind the bad ones")
    reasons = [dict(m.headers())["reprise-dead-letter-reason"].decode()
               for m in read_topic(kafka_bootstrap, f"{ns}.dead-letters", 4, timeout=30)]
    assert len(reasons) == 4, reasons
    assert "lacks the reprise-kind" in reasons[0]
    assert "malformed Invoke" in reasons[1]
    assert "unknown record kind 'Nope'" in reasons[2]
    assert "malformed invocation id" in reasons[3]


def test_two_routers_share_the_commands_topic_and_route_each_command_once(engine: Engine, kafka_bootstrap: str,
                                                                          tmp_path: Path) -> None:
    ns = namespace_of(engine)
    second = Engine(kafka_bootstrap, ns, tmp_path / "second", role="ingress")  # a second router
    second.start()
    try:
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})

        def stable_with_two() -> bool:
            group = admin.describe_consumer_groups([f"{ns}.commands-router"])[f"{ns}.commands-router"].result(10)
            return str(group.state).endswith("STABLE") and len(group.members) == 2

        deadline = time.monotonic() + 60  # no rebalance while the commands are routed (it could route some twice)
        while not stable_with_two() and time.monotonic() < deadline:
            time.sleep(0.2)
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        sent = 40
        for i in range(sent):
            producer.produce(f"{ns}.commands", partition=i % 4, value=command("Counter", "add", b"1", key=f"c{i % 3}"))
        assert producer.flush(30) == 0
        wait_until(lambda: sum(int(state(engine, "Counter", f"c{k}").get("value", 0)) for k in range(3)) == sent,
                   60, "every command applied")
        time.sleep(1)  # a second router in another group would be appending its copies now
        assert log_kinds(kafka_bootstrap, ns).count("Invoke") == sent  # each appended once, by one router
        assert stable_with_two()  # and both routers were in the group
    finally:
        second.kill()
