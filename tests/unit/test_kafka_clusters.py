"""Kafka clusters by name (engine/kafka_clusters.py): which properties are shown redacted (as a Restate
1.7.12 server redacted them when these were registered), validation, the cluster Reprise runs on, and
subscriptions and clusters sharing the subscriptions topic."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import fastavro
import pytest

from reprise.engine.config import Config
from reprise.engine.kafka_clusters import (
    KEY_PREFIX,
    KafkaCluster,
    consumer_settings,
    name_problem,
    own_cluster,
    properties_problem,
    redacted,
)
from reprise.engine.subscriptions import Subscription, SubscriptionRegistry, options_problem, subscription_id
from reprise.schemas import codec

# What Restate 1.7.12 answered "***" for, and what it showed as given, for the same POST /kafka-clusters
SHOWN_REDACTED = [
    "sasl.username", "sasl.password", "SASL.PASSWORD", "ssl.key.password", "ssl.key.password.x", "password", "secret",
    "sasl.oauthbearer.client.secret", "sasl.oauthbearer.client.credentials.client.secret", "ssl.key.location",
    "ssl.key.pem", "sasl.oauthbearer.config", "sasl.jaas.config", "ssl.keystore.password", "ssl.keystore.location",
    "ssl.truststore.password", "ssl.truststore.location", "sasl.oauthbearer.token.endpoint.url",
    "sasl.oauthbearer.assertion.private.key.file", "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
]
SHOWN_AS_GIVEN = [
    "bootstrap.servers", "client.id", "ssl.ca.location", "sasl.kerberos.keytab", "ssl.certificate.pem", "ssl.engine.id",
    "security.protocol", "auth", "sasl.mechanisms", "sasl.mechanism", "my.token", "sasl.kerberos.principal",
    "ssl.ca.pem",
    "sasl.oauthbearer.client.id", "apikey", "ssl_key", "ssl.key", "private", "sasl.oauthbearer.extensions",
    "my.credential", "basic.auth.user.info", "https.ca.location", "sasl.kerberos.kinit.cmd",
    "sasl.kerberos.service.name", "sasl.oauthbearer.assertion.jwt.template.file",
    "sasl.oauthbearer.metadata.authentication.type", "sasl.oauthbearer.method", "sasl.oauthbearer.scope",
    "schema.registry.basic.auth.user.info", "ssl.certificate.location", "ssl.crl.location", "ssl.keystore.type",
]


def test_redaction_is_restates() -> None:
    props = {k: "v" for k in SHOWN_REDACTED + SHOWN_AS_GIVEN}
    shown = redacted(props)
    assert sorted(k for k, v in shown.items() if v == "***") == sorted(SHOWN_REDACTED)
    assert all(shown[k] == "v" for k in SHOWN_AS_GIVEN)


def test_describe_never_shows_a_secret_and_writes_restates_time() -> None:
    out = KafkaCluster("c", {"bootstrap.servers": "b:1", "sasl.password": "hunter2"}, 1_765_000_000_123).describe()
    assert out == {"name": "c", "properties": {"bootstrap.servers": "b:1", "sasl.password": "***"},
                   "created_at": "2025-12-06T05:46:40.123000000Z"}


def test_validation() -> None:
    assert properties_problem("c", {"client.id": "x"}) == \
        "kafka cluster 'c' properties must contain either 'bootstrap.servers' or 'metadata.broker.list'"
    assert properties_problem("c", {"metadata.broker.list": "b:1"}) is None
    assert properties_problem("c", {"bootstrap.servers": 1}) is not None
    assert name_problem("my-cluster") is None and name_problem("eu.kafka-1") is None
    for bad in ("", "a/b", "bad name", "-x", None):
        assert name_problem(bad) is not None, bad


def test_own_cluster_is_the_engines_under_its_configured_name() -> None:
    own = own_cluster(Config(bootstrap="k1:9092", kafka_cluster_name="my-cluster"))
    assert own.own and own.name == "my-cluster" and own.properties == {"bootstrap.servers": "k1:9092"}
    assert "info" in own.describe()


def test_a_registered_clusters_consumer_takes_its_properties_and_reprises_commit_discipline() -> None:
    settings = consumer_settings({"bootstrap.servers": "far:9092", "enable.auto.commit": "true", "group.id": "theirs"},
                                 **{"group.id": "ns.sub_1"})
    assert settings["bootstrap.servers"] == "far:9092" and settings["group.id"] == "ns.sub_1"
    assert settings["enable.auto.commit"] is False and settings["enable.auto.offset.store"] is False


def test_subscription_ids_have_restates_form_and_name_the_cluster() -> None:
    sub_id = subscription_id("t", "S", "h")
    assert re.fullmatch(r"sub_1[0-9A-Za-z]{22}", sub_id) and sub_id == subscription_id("t", "S", "h")
    assert subscription_id("t", "S", "h", "far") != sub_id
    sub = Subscription("sub_1", "orders", "S", "h", 1)
    assert sub.describe("my-cluster", "ns")["source"] == "kafka://my-cluster/orders"
    assert Subscription("sub_2", "orders", "S", "h", 1, "far").describe("my-cluster", "ns")["source"] == \
        "kafka://far/orders"


def test_subscription_options_name_it_and_are_shown_over_the_consumers_defaults() -> None:
    # without options a subscription keeps the id it had before options were kept
    assert subscription_id("orders", "S", "h") == subscription_id("orders", "S", "h", None, {}) == \
        "sub_11GPpvwOgmcmtIJDrA7Ebud"
    latest = subscription_id("orders", "S", "h", None, {"auto.offset.reset": "latest"})
    assert latest != subscription_id("orders", "S", "h") and latest == subscription_id(
        "orders", "S", "h", None, {"auto.offset.reset": "latest"})
    assert Subscription("sub_1", "orders", "S", "h", 1).describe("c", "ns")["options"] == {
        "group.id": "ns.sub_1", "auto.offset.reset": "earliest"}
    given = {"auto.offset.reset": "latest", "group.id": "mine", "client.id": "me"}
    assert Subscription("sub_1", "orders", "S", "h", 1, None, given).describe("c", "ns")["options"] == given
    assert options_problem({"auto.offset.reset": "latest"}) is None
    assert "enable.auto.commit" in (options_problem({"enable.auto.commit": "true"}) or "")


@pytest.fixture
def registry() -> SubscriptionRegistry:
    return SubscriptionRegistry(Config(namespace="unit"))  # not started: records are handed to it below


def test_clusters_and_subscriptions_share_the_topic(registry: SubscriptionRegistry) -> None:
    v1_schema = fastavro.parse_schema(json.loads((Path(codec.__file__).parent / "subscription.v1.avsc").read_text()))
    body = io.BytesIO()  # written before subscriptions named a cluster: it reads as the own cluster's
    fastavro.schemaless_writer(body, v1_schema, {"id": "sub_1", "source_topic": "t", "service": "S", "handler": "h",
                                                 "created_ms": 1})
    registry._on_record(b"sub_1", codec.decode("Subscription", 1, body.getvalue()))
    registry._on_record((KEY_PREFIX + "far").encode(), {"name": "far", "properties": {"bootstrap.servers": "f:1"},
                                                         "created_ms": 2})
    assert [s.id for s in registry.all()] == ["sub_1"] and registry.all()[0].cluster is None
    assert registry.cluster("far") == KafkaCluster("far", {"bootstrap.servers": "f:1"}, 2)
    registry._on_record((KEY_PREFIX + "far").encode(), None)
    assert registry.cluster("far") is None and [s.id for s in registry.all()] == ["sub_1"]
    assert registry.create("t", "S", "h") == (registry.get("sub_1"), False)  # the same one, under its older id
    v2 = {"id": "sub_2", "source_topic": "t", "service": "S", "handler": "h", "created_ms": 2, "cluster": None}
    v2_schema = fastavro.parse_schema(json.loads((Path(codec.__file__).parent / "subscription.v2.avsc").read_text()))
    body = io.BytesIO()  # written before subscriptions kept their options: it has none
    fastavro.schemaless_writer(body, v2_schema, v2)
    registry._on_record(b"sub_2", codec.decode("Subscription", 2, body.getvalue()))
    assert registry.get("sub_2") == Subscription(**v2) and registry.get("sub_2").options == {}
    current = {**v2, "id": "sub_3", "options": {"auto.offset.reset": "latest"}}
    registry._on_record(b"sub_3", codec.decode("Subscription", 3, codec.encode("Subscription", current)))
    assert registry.get("sub_3") == Subscription(**current)


class _Subscriptions:
    """What the runner reads of the registry: its subscriptions and registered clusters."""

    def __init__(self) -> None:
        self.subs = [Subscription("sub_far", "t", "S", "h", 1, "far")]
        self.clusters: dict[str, KafkaCluster] = {}

    def all(self) -> list[Subscription]:
        return list(self.subs)

    def cluster(self, name: str) -> KafkaCluster | None:
        return self.clusters.get(name)


def test_runner_follows_its_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """A subscription whose cluster is not registered waits; it starts with the cluster's properties
    once registered, restarts with new ones after a PATCH, and stops when the cluster goes."""
    import threading
    import time

    from reprise.ingress import subscriptions as runner_module

    monkeypatch.setattr(runner_module, "log_partitions", lambda _cfg: 4)
    subs = _Subscriptions()
    runner = runner_module.SubscriptionRunner(Config(), None, subs)  # type: ignore[arg-type]
    started: list[tuple[dict[str, str] | None, threading.Event]] = []
    monkeypatch.setattr(runner, "_run", lambda _sub, source, stop: (started.append((source, stop)), stop.wait()))
    supervisor = threading.Thread(target=runner._supervise, daemon=True)
    supervisor.start()

    def eventually(check: object) -> None:
        deadline = time.monotonic() + 10
        while not check() and time.monotonic() < deadline:  # type: ignore[operator]
            time.sleep(0.05)
        assert check(), "not within 10 s"  # type: ignore[operator]

    try:
        time.sleep(1.2)  # two supervision rounds
        assert started == []  # "far" is not registered: nothing runs
        subs.clusters["far"] = KafkaCluster("far", {"bootstrap.servers": "f:1"}, 1)
        eventually(lambda: [s for s, _ in started] == [{"bootstrap.servers": "f:1"}])
        subs.clusters["far"] = KafkaCluster("far", {"bootstrap.servers": "f:2"}, 1)
        eventually(lambda: [s for s, _ in started] == [{"bootstrap.servers": "f:1"}, {"bootstrap.servers": "f:2"}])
        assert started[0][1].is_set() and not started[1][1].is_set()
        del subs.clusters["far"]
        eventually(lambda: started[1][1].is_set())
    finally:
        runner._stop.set()
        supervisor.join(5)
