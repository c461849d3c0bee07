"""Kafka subscriptions: each record of a user topic invokes a handler, per-key order kept."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import Producer

from tests.harness import Engine, post
from tests.integration.test_crash_recovery import wait_until
from tests.integration.test_introspection import cli
from tests.integration.test_kafka_native import make_topic, namespace_of, state

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def engine(module_engine: Engine) -> Engine:
    """One engine for the module: each test has topics, keys and subscriptions of its own."""
    return module_engine


def test_subscription_invokes_per_record_in_key_order(engine: Engine, kafka_bootstrap: str) -> None:
    topic = make_topic(kafka_bootstrap, f"{namespace_of(engine)}.orders", 3)
    out = cli(engine, "subscriptions", "create", "--topic", topic, "--target", "Counter/append")
    assert out.returncode == 0, out.stderr
    sub = json.loads(out.stdout)
    again = cli(engine, "subscriptions", "create", "--topic", topic, "--target", "Counter/append")
    assert again.returncode == 0 and json.loads(again.stdout)["id"] == sub["id"]  # harmless twice
    assert sub["id"] in cli(engine, "subscriptions", "ls").stdout
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    for i in range(20):
        for key in ("alice", "bob", "carol"):
            producer.produce(topic, key=key.encode(), value=json.dumps(i).encode())
    assert producer.flush(30) == 0
    for key in ("alice", "bob", "carol"):
        wait_until(lambda k=key: len(json.loads(state(engine, "Counter", k).get("items", "[]"))) == 20, 60,
                   f"{key}'s 20 records")
        assert json.loads(state(engine, "Counter", key)["items"]) == list(range(20))


def test_subscription_to_unknown_handler_and_delete(engine: Engine, kafka_bootstrap: str) -> None:
    body = json.dumps({"source": "kafka://default/x", "sink": "service://Counter/nope"}).encode()
    status, raw = post(engine.admin + "/subscriptions", body, {"content-type": "application/json"})
    assert status == 404 and "Counter/nope" in json.loads(raw)["message"]
    out = cli(engine, "subscriptions", "create", "--topic", "some-topic", "--target", "Counter/add")
    sub_id = json.loads(out.stdout)["id"]
    assert cli(engine, "subscriptions", "delete", sub_id).returncode == 0
    assert sub_id not in cli(engine, "subscriptions", "ls").stdout
    out = cli(engine, "subscriptions", "delete", sub_id)
    assert out.returncode == 5 and "404" in out.stderr  # not found (docs/cli.md)
