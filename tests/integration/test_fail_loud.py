"""Fail loud, never half-alive: bad records are skipped or dead-lettered and the process goes on; a
critical component that fails ends the process non-zero; every wait for a reply ends."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from reprise.engine.ids import InvocationId
from reprise.schemas import codec
from tests.harness import Engine, Proc, free_port, post, request, wait_http
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka

SMALL_LIMIT = 100_000  # REPRISE_MAX_MESSAGE_BYTES of these engines: the log's max.message.bytes is 64 KiB more
TOPIC_LIMIT = SMALL_LIMIT + 64 * 1024


def read_all(bootstrap: str, topic: str, want: int, timeout: float = 60.0) -> list[Any]:
    """The first ``want`` records of a one-partition topic (fewer if they do not come in time)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests", "enable.auto.commit": False,
                  "fetch.message.max.bytes": 2 * TOPIC_LIMIT})
    c.assign([TopicPartition(topic, 0, 0)])
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += [m for m in c.consume(100, 0.5) if m.error() is None]
    c.close()
    return got


def produce(bootstrap: str, topic: str, value: bytes | None, headers: list[tuple[str, bytes]] | None = None,
            key: bytes | None = None, partition: int = 0) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.max.bytes": 4 * TOPIC_LIMIT})
    p.produce(topic, value=value, key=key, headers=headers or [], partition=partition)
    assert p.flush(30) == 0


def ready_status(eng: Engine) -> int:
    """/health/ready's status; 0 while the port changes hands (the health-only server started first
    gives way to the whole admin API)."""
    try:
        return request(eng.admin + "/health/ready", method="GET")[0]
    except OSError:
        return 0


def test_an_oversized_dead_letter_does_not_stop_the_apply_thread(kafka_bootstrap: str, namespace: str,
                                                                 tmp_path: Path) -> None:
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "engine", partitions=1,
                 env={"REPRISE_MAX_MESSAGE_BYTES": str(SMALL_LIMIT)})
    eng.start()
    try:
        bad_headers = [(codec.KIND_HEADER, b"Invoke"), (codec.VERSION_HEADER, b"1")]
        big = b"\xff" * (TOPIC_LIMIT - 150)  # fits the log; with the dead letter's headers it no longer fits
        produce(kafka_bootstrap, f"{namespace}.log", big, bad_headers)
        produce(kafka_bootstrap, f"{namespace}.log", b"\xff" * 10, bad_headers)  # applied only if the loop goes on
        first, second = read_all(kafka_bootstrap, f"{namespace}.dead-letters", 2)
        assert first.value() is None
        assert dict(first.headers())["reprise-dead-letter-value-omitted"] == str(len(big)).encode()
        assert dict(first.headers())["reprise-source"] == f"{namespace}.log/0/".encode() + b"%d" % first_offset(
            first)
        assert second.value() == b"\xff" * 10
        assert eng.popen is not None and eng.popen.poll() is None
        assert request(eng.admin + "/health/live", method="GET")[0] == 200
    finally:
        eng.kill()


def first_offset(dead_letter: Any) -> int:
    return int(dict(dead_letter.headers())["reprise-source"].decode().rsplit("/", 1)[1])


def test_foreign_records_on_the_replies_topic_are_skipped(kafka_bootstrap: str, namespace: str,
                                                          tmp_path: Path) -> None:
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "engine", partitions=1)
    eng.start()
    try:
        replies = f"{namespace}.replies"
        produce(kafka_bootstrap, replies, b"not avro at all")
        invoke = {"invocation_id": str(InvocationId.random()), "service": "S", "handler": "h", "input": b""}
        produce(kafka_bootstrap, replies, codec.encode("Invoke", invoke), codec.headers_for("Invoke"))
        inv = InvocationId.random()
        status, _, body = request(f"{eng.ingress}/restate/invocation/{inv}/output", method="GET", timeout=30)
        assert status == 404 and b"not found" in body, (status, body)  # answered through the replies topic
        status, _, body = request(f"{eng.admin}/invocations/{inv}/cancel", method="PATCH", timeout=30)
        assert status == 404, (status, body)
        metrics = post(eng.admin + "/metrics", None, method="GET")[1].decode()
        skipped = [line for line in metrics.splitlines() if line.startswith("reprise_reply_records_skipped_total")]
        assert skipped and float(skipped[0].split()[-1]) >= 2, skipped
    finally:
        eng.kill()


def test_a_call_that_gets_no_answer_ends_with_504(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> None:
    """An ingress with no processor behind it: nothing ever answers, and the client hears so in time."""
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "engine", partitions=1, role="ingress",
                 env={"REPRISE_REPLY_TIMEOUT_S": "2"})
    eng.start()
    try:
        inv = InvocationId.random()
        status, headers, body = request(f"{eng.ingress}/restate/invocation/{inv}/attach", method="GET", timeout=60)
        assert status == 504, (status, body)
        message = json.loads(body)["message"]
        assert "no answer within 2 s" in message and f"/restate/invocation/{inv}/attach" in message
        assert headers["x-restate-id"] == str(inv)
        status, _, body = request(f"{eng.admin}/invocations/{inv}/kill", method="PATCH", timeout=60)
        assert status == 504, (status, body)
    finally:
        eng.kill()


@pytest.mark.parametrize("role,component", [("dev", "apply"), ("ingress", "replies"), ("dev", "timers")])
def test_a_failing_critical_component_ends_the_process_non_zero(kafka_bootstrap: str, namespace: str,
                                                                tmp_path: Path, role: str, component: str) -> None:
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "engine", partitions=1, role=role,
                 env={"REPRISE_FAULT_FAIL_THREAD": component})
    Proc.start(eng)  # not Engine.start: the process is not expected to become ready
    try:
        assert eng.popen is not None
        rc = eng.popen.wait(90)
        assert rc == 70, eng.output()[-3000:]
        assert f"critical {'task' if component == 'timers' else 'thread'} '{component}' failed" in eng.output()
    finally:
        eng.kill()


def test_ready_only_once_the_partitions_are_caught_up(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> None:
    hold = tmp_path / "hold-apply"
    hold.touch()
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "engine", partitions=2, role="processor",
                 env={"REPRISE_FAULT_HOLD_APPLY": str(hold)})
    eng.start()
    try:
        def started() -> bool:
            body = request(eng.admin + "/health/ready", method="GET")[2]
            return json.loads(body)["checks"]["started"] == "ok"

        wait_until(started, 60, "the processor started")
        status, _, body = request(eng.admin + "/health/ready", method="GET")
        assert status == 503, body
        checks = json.loads(body)["checks"]
        assert checks["partitions"].startswith("no partitions assigned") and checks["kafka"] == "ok", checks
        assert checks["registry"] == "ok"
        assert request(eng.admin + "/health/live", method="GET")[0] == 200
        assert post(eng.admin + "/health", None, method="GET") == (200, b"{}")  # the old probe still answers
        os.unlink(hold)
        wait_until(lambda: request(eng.admin + "/health/ready", method="GET")[0] == 200, 60, "ready")
        owned = eng.admin_json("/partitions")["partitions"]
        assert sorted(p["partition"] for p in owned) == [0, 1] and all(p["leading"] for p in owned), owned
    finally:
        eng.kill()


def test_not_ready_while_kafka_is_unreachable(tmp_path: Path, namespace: str) -> None:
    eng = Engine(f"127.0.0.1:{free_port()}", namespace, tmp_path / "engine", partitions=1, role="processor")
    Proc.start(eng)
    try:
        wait_http(eng.admin + "/health/live")  # answered while the process waits for Kafka
        assert post(eng.admin + "/health", None, method="GET")[0] == 404  # the admin API itself is not up
        status, _, body = request(eng.admin + "/health/ready", method="GET")
        assert status == 503, body
        checks = json.loads(body)["checks"]
        assert checks["kafka"].startswith("unreachable at 127.0.0.1:") and checks["started"] == "still starting"
        assert request(eng.admin + "/health/live", method="GET")[0] == 200
        assert eng.popen is not None
        assert eng.popen.wait(120) != 0  # it never came up: it says so with its exit code
    finally:
        eng.kill()


def test_a_dev_engine_is_not_ready_while_it_catches_up(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> None:
    """Its partitions are its own from the start (no group): not ready until each claim is applied."""
    hold = tmp_path / "hold-apply"
    hold.touch()
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "engine", partitions=2,
                 env={"REPRISE_FAULT_HOLD_APPLY": str(hold)})
    Proc.start(eng)
    try:
        wait_http(eng.admin + "/health/live")

        def checks() -> dict[str, str]:
            return json.loads(request(eng.admin + "/health/ready", method="GET")[2])["checks"]

        wait_until(lambda: "partitions" in checks(), 60, "the processor's check")
        status, _, body = request(eng.admin + "/health/ready", method="GET")
        assert status == 503 and json.loads(body)["checks"]["partitions"] == "catching up on partitions [0, 1]"
        os.unlink(hold)
        wait_until(lambda: ready_status(eng) == 200, 60, "ready")
        assert all(p["leading"] for p in eng.admin_json("/partitions")["partitions"])
    finally:
        eng.kill()
