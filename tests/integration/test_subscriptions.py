"""Kafka subscriptions: each record of a user topic invokes a handler, per-key order kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import Producer

from tests.harness import Engine, post
from tests.integration.test_crash_recovery import wait_until
from tests.integration.test_introspection import cli
from tests.integration.test_kafka_native import make_topic, namespace_of, state
from tests.restate_cli import install_cli, run_cli

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
    status, raw = post(engine.admin + "/query", json.dumps({"query": (
        "select distinct invoked_by, invoked_by_subscription_id from sys_invocation "
        "where target = 'Counter/alice/append'")}).encode(), {"content-type": "application/json",
                                                             "accept": "application/json"})
    assert status == 200 and json.loads(raw)["rows"] == [  # as Restate shows them
        {"invoked_by": "subscription", "invoked_by_subscription_id": sub["id"]}], raw


def test_subscription_to_unknown_handler_and_delete(engine: Engine, kafka_bootstrap: str) -> None:
    # Restate 1.7.12's answers, byte for byte (the sink is checked before the source's cluster)
    for sink, reason in (("service://Counter/nope", "cannot find service/handler specified in the sink URI."),
                         ("service://Nope/add", "cannot find service/handler specified in the sink URI."),
                         ("queue://Counter/add", "must have a scheme segment, with supported schemes: [service].")):
        assert _admin(engine, "POST", "/subscriptions", {"source": "kafka://elsewhere/x", "sink": sink}) == (400, {
            "message": f"[META0009] invalid sink URI '{sink}': {reason}", "restate_code": "META0009"})
    assert _admin(engine, "POST", "/subscriptions", {"source": "kafka://default/x", "sink": "service://Counter"}) == (
        400, {"message": "[META0009] invalid sink URI 'service://Counter/': cannot find service/handler specified "
                         "in the sink URI.", "restate_code": "META0009"})
    assert _admin(engine, "POST", "/subscriptions", {"source": "nats://default/x", "sink": "queue://Counter/add"}) == (
        400, {"message": "[META0009] invalid source URI 'nats://default/x': must have a scheme segment, with "
                         "supported schemes: [kafka].", "restate_code": "META0009"})
    out = cli(engine, "subscriptions", "create", "--topic", "some-topic", "--target", "Counter/add")
    sub_id = json.loads(out.stdout)["id"]
    assert cli(engine, "subscriptions", "delete", sub_id).returncode == 0
    assert sub_id not in cli(engine, "subscriptions", "ls").stdout
    out = cli(engine, "subscriptions", "delete", sub_id)
    assert out.returncode == 5 and "404" in out.stderr  # not found (docs/cli.md)


def _admin(engine: Engine, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
    status, raw = post(engine.admin + path, json.dumps(body).encode() if body is not None else None,
                       {"content-type": "application/json"}, method=method)
    return status, json.loads(raw) if raw else None


def test_kafka_clusters_as_restate_and_a_subscription_on_a_registered_one(engine: Engine, kafka_bootstrap: str,
                                                                        tmp_path: Path) -> None:
    """The cluster Reprise runs on is listed under its name and cannot be changed; a source naming an
    unknown cluster is refused as Restate refuses it; a registered cluster is stored on the topic
    (another process reads it, secrets and all), shown redacted, and its subscriptions consume with its
    properties; removing it while a subscription reads from it needs force."""
    from confluent_kafka.admin import AdminClient

    from reprise.engine.config import Config
    from reprise.engine.subscriptions import SubscriptionRegistry

    status, listed = _admin(engine, "GET", "/kafka-clusters")
    assert status == 200 and [c["name"] for c in listed["clusters"]] == ["default"]
    assert listed["clusters"][0]["properties"]["bootstrap.servers"] == kafka_bootstrap
    assert _admin(engine, "GET", "/kafka-clusters/default")[1]["subscriptions"] == []
    assert _admin(engine, "DELETE", "/kafka-clusters/default")[0] == 409
    assert _admin(engine, "PATCH", "/kafka-clusters/default", {"properties": {"bootstrap.servers": "x:1"}})[0] == 409
    topic = make_topic(kafka_bootstrap, f"{namespace_of(engine)}.elsewhere-orders")
    sub_body = {"source": f"kafka://elsewhere/{topic}", "sink": "service://Counter/append"}
    status, refused = _admin(engine, "POST", "/subscriptions", sub_body)
    assert status == 400 and refused == {
        "message": "Kafka cluster 'elsewhere' not found. Available clusters: [\"default\"]", "restate_code": None}

    client_id = f"reprise-test-{namespace_of(engine)}"
    props = {"bootstrap.servers": kafka_bootstrap, "client.id": client_id, "sasl.password": "not-shown"}
    status, created = _admin(engine, "POST", "/kafka-clusters", {"name": "elsewhere", "properties": props})
    assert status == 201 and created["properties"] == {**props, "sasl.password": "***"}
    assert _admin(engine, "POST", "/kafka-clusters", {"name": "elsewhere", "properties": props})[0] == 409
    other = SubscriptionRegistry(Config(bootstrap=kafka_bootstrap, namespace=namespace_of(engine)))
    other.start()  # another process's view of the topic
    try:
        assert other.cluster("elsewhere") is not None and other.cluster("elsewhere").properties == props
    finally:
        other.stop()

    status, sub = _admin(engine, "POST", "/subscriptions", sub_body)
    assert status == 201 and sub["source"] == f"kafka://elsewhere/{topic}"
    assert [s["id"] for s in _admin(engine, "GET", "/kafka-clusters/elsewhere?include_subscriptions=true")[1][
        "subscriptions"]] == [sub["id"]]
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    for i in range(3):
        producer.produce(topic, key=b"far", value=json.dumps(i).encode())
    assert producer.flush(30) == 0
    wait_until(lambda: len(json.loads(state(engine, "Counter", "far").get("items", "[]"))) == 3, 60, "3 records")
    group = f"{namespace_of(engine)}.{sub['id']}"  # its consumer was built from the cluster's properties
    kafka_admin = AdminClient({"bootstrap.servers": kafka_bootstrap})  # kept alive until it answers
    described = kafka_admin.describe_consumer_groups([group])[group].result(30)
    assert {m.client_id for m in described.members} == {client_id}
    status, patched = _admin(engine, "PATCH", "/kafka-clusters/elsewhere",
                             {"properties": {**props, "client.id": client_id + "-2"}})
    assert status == 200 and patched["properties"]["sasl.password"] == "***"
    wait_until(lambda: {m.client_id for m in kafka_admin.describe_consumer_groups([group])[group].result(30).members}
               == {client_id + "-2"}, 60, "the subscription's consumer to reconnect with the new properties")
    assert _admin(engine, "PATCH", "/kafka-clusters/elsewhere", {"properties": {"client.id": "x"}})[0] == 400
    exe = install_cli()  # Restate's CLI reads both (it parses subscription ids: Restate's form)
    if exe is not None:
        for args, shown in ((("kafka-clusters", "list"), "elsewhere"), (("subscriptions", "describe", sub["id"]),
                                                                        f"kafka://elsewhere/{topic}")):
            code, out = run_cli(exe, engine.admin, engine.ingress, tmp_path, None, *args)
            assert code == 0 and shown in out, out

    status, orphan = _admin(engine, "DELETE", "/kafka-clusters/elsewhere")
    assert status == 409 and sub["id"] in orphan["message"]
    assert _admin(engine, "DELETE", "/kafka-clusters/elsewhere?force=true")[0] == 202
    assert _admin(engine, "GET", "/kafka-clusters/elsewhere")[0] == 404


def test_subscription_options_are_kept_shown_and_honoured(engine: Engine, kafka_bootstrap: str) -> None:
    """As on Restate 1.7.12: the options given at creation are shown with the consumer's group, and its
    consumer uses them (``auto.offset.reset`` latest skips what the topic held before; ``group.id``)."""
    from confluent_kafka.admin import AdminClient

    ns = namespace_of(engine)
    late, early = make_topic(kafka_bootstrap, f"{ns}.opts-latest"), make_topic(kafka_bootstrap, f"{ns}.opts-default")
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    producer.produce(late, key=b"opt-late", value=b"0")
    producer.produce(early, key=b"opt-early", value=b"0")
    assert producer.flush(30) == 0
    group = f"{ns}.own-group"
    status, sub = _admin(engine, "POST", "/subscriptions", {
        "source": f"kafka://default/{late}", "sink": "service://Counter/append",
        "options": {"auto.offset.reset": "latest", "group.id": group}})
    assert status == 201 and sub["options"] == {"group.id": group, "auto.offset.reset": "latest"}, sub
    assert _admin(engine, "GET", f"/subscriptions/{sub['id']}") == (200, sub)
    status, plain = _admin(engine, "POST", "/subscriptions", {"source": f"kafka://default/{early}",
                                                             "sink": "service://Counter/append", "options": None})
    assert status == 201 and plain["options"] == {"group.id": f"{ns}.{plain['id']}", "auto.offset.reset": "earliest"}

    sent = iter(range(1, 1000))

    def a_later_record_arrived() -> bool:
        producer.produce(late, key=b"opt-late", value=str(next(sent)).encode())
        producer.flush(30)
        return bool(json.loads(state(engine, "Counter", "opt-late").get("items", "[]")))

    wait_until(a_later_record_arrived, 60, "a record written after the subscription")
    items = json.loads(state(engine, "Counter", "opt-late")["items"])
    assert 0 not in items and items == sorted(items)  # the record from before was skipped, the rest kept order
    wait_until(lambda: json.loads(state(engine, "Counter", "opt-early").get("items", "[]")) == [0], 60,
               "the record written before the subscription without options")
    kafka_admin = AdminClient({"bootstrap.servers": kafka_bootstrap})  # kept alive until it answers
    assert kafka_admin.describe_consumer_groups([group])[group].result(30).members  # its consumer is in that group

    out = cli(engine, "subscriptions", "create", "--topic", late, "--target", "Counter/add",
              "--option", "auto.offset.reset=latest", "--option", "client.id=opts")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["options"] == {"group.id": f"{ns}.{json.loads(out.stdout)['id']}",
                                                 "auto.offset.reset": "latest", "client.id": "opts"}
    for options, code in (({"enable.auto.commit": "true"}, 400), ({"auto.offset.reset": 1}, 422)):
        status, refused = _admin(engine, "POST", "/subscriptions", {
            "source": f"kafka://default/{late}", "sink": "service://Counter/add", "options": options})
        assert status == code, refused
