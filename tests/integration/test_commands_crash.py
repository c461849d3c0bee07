"""The commands router commits a command's offset only after Kafka acknowledged its Invoke. Killed in
between (the fault point ``commands.before_commit``), it reads the command again after a restart and
appends the same Invoke again, with the same invocation id (derived from the command's position), and
apply() keeps one: the command runs exactly once and nothing is lost."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from reprise.schemas import codec
from tests.harness import Engine, Service, call_json
from tests.integration.test_crash_recovery import wait_until
from tests.integration.test_kafka_native import command, state

pytestmark = pytest.mark.kafka


def invokes(bootstrap: str, namespace: str) -> list[str]:
    """The invocation ids of the Invoke records now on the log, from its start."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests", "enable.auto.commit": False})
    topic = f"{namespace}.log"
    ids = []
    for p in c.list_topics(topic, timeout=10).topics[topic].partitions:
        low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high <= low:
            continue
        c.assign([TopicPartition(topic, p, low)])
        seen = low
        while seen < high:
            for m in c.consume(100, 1.0):
                if m.error() is not None:
                    continue
                seen = m.offset() + 1
                headers = dict(m.headers() or [])
                if headers.get(codec.KIND_HEADER) == b"Invoke":
                    ids.append(codec.decode("Invoke", int(headers[codec.VERSION_HEADER]), m.value())["invocation_id"])
    c.close()
    return ids


def committed(bootstrap: str, namespace: str) -> int:
    """The commands router's committed offset on the commands topic's partition 0 (negative: none)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{namespace}.commands-router",
                  "enable.auto.commit": False})
    (tp,) = c.committed([TopicPartition(f"{namespace}.commands", 0)], timeout=10)
    c.close()
    return tp.offset


def test_a_router_killed_between_the_ack_and_the_commit_runs_the_command_once(
        kafka_bootstrap: str, namespace: str, tmp_path: Path, service: Service) -> None:
    home = tmp_path / "engine"
    doomed = Engine(kafka_bootstrap, namespace, home, env={"REPRISE_FAULT_CRASH_AT": "commands.before_commit:1"})
    doomed.start()
    doomed.register(service.uri)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(f"{namespace}.commands", partition=0, value=command("Counter", "add", b"5", key="crash"))
    assert producer.flush(30) == 0
    assert doomed.popen is not None and doomed.popen.wait(120) == -signal.SIGKILL, doomed.output()[-3000:]
    first = invokes(kafka_bootstrap, namespace)
    assert len(first) == 1, first  # acknowledged before the kill ...
    assert committed(kafka_bootstrap, namespace) < 0  # ... and never committed: the kill landed in the window

    engine = Engine(kafka_bootstrap, namespace, home)
    engine.start()
    try:
        wait_until(lambda: committed(kafka_bootstrap, namespace) == 1, 60, "the command's commit after the restart")
        again = invokes(kafka_bootstrap, namespace)
        assert again == first * 2, again  # read again, routed again: the same invocation id
        # A later call on the same object is applied after both copies: it sees the command's add once.
        assert call_json(engine, "/Counter/crash/add", 1) == (200, 6)
        assert state(engine, "Counter", "crash") == {"value": "6"}
    finally:
        engine.kill()
