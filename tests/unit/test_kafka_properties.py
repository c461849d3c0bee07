"""Kafka client settings from a properties file (engine/kafka_properties.py), and how they reach clients."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprise.engine.config import Config
from reprise.engine.kafka import admin_config, consumer_config, producer_config
from reprise.engine.kafka_properties import KafkaConfigError, load, parse, settings_for


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "client.properties"
    path.write_text(text)
    load.cache_clear()
    return str(path)


def test_plain_keys_apply_to_every_role_and_prefixed_keys_to_theirs() -> None:
    by_role = parse("# a comment\n! also one\n\nsecurity.protocol = SASL_SSL\nproducer.linger.ms=5\n"
                    "consumer.fetch.wait.max.ms=20\nadmin.request.timeout.ms=9000\nsasl.password=a=b=c\n")
    assert by_role[None] == {"security.protocol": "SASL_SSL", "sasl.password": "a=b=c"}
    assert by_role["producer"] == {"linger.ms": "5"}
    assert by_role["consumer"] == {"fetch.wait.max.ms": "20"}
    assert by_role["admin"] == {"request.timeout.ms": "9000"}


@pytest.mark.parametrize("line", ["acks=1", "producer.enable.idempotence=false", "consumer.isolation.level=x",
                                  "group.id=mine", "consumer.enable.auto.commit=true", "message.timeout.ms=5"])
def test_settings_the_guarantees_rest_on_are_refused_with_the_line(line: str) -> None:
    with pytest.raises(KafkaConfigError, match=r"f:2: .* is set by Reprise"):
        parse(f"linger.ms=1\n{line}\n", "f")


def test_a_line_without_a_value_and_a_role_scoped_bootstrap_are_refused() -> None:
    with pytest.raises(KafkaConfigError, match=r"f:1: expected key=value"):
        parse("security.protocol SASL_SSL\n", "f")
    with pytest.raises(KafkaConfigError, match="applies to every client"):
        parse("producer.bootstrap.servers=x:9092\n", "f")


def test_a_missing_file_says_so() -> None:
    load.cache_clear()
    with pytest.raises(KafkaConfigError, match="cannot read the Kafka client config /nonexistent/x"):
        load("/nonexistent/x")


def test_client_configs_merge_file_over_defaults_and_call_site_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, "bootstrap.servers=broker-a:9092\nlinger.ms=7\nconsumer.fetch.wait.max.ms=20\n"
                           "compression.type=zstd\nclient.id=mine\n")
    cfg = Config(kafka_config=path, bootstrap="b:1")
    produced = producer_config(cfg, **{"message.timeout.ms": 0})
    assert produced["linger.ms"] == "7" and produced["compression.type"] == "zstd"
    assert produced["acks"] == "all" and produced["enable.idempotence"] is True
    assert produced["message.timeout.ms"] == 0 and produced["bootstrap.servers"] == "b:1"
    consumed = consumer_config(cfg, **{"fetch.wait.max.ms": 100})
    assert consumed["fetch.wait.max.ms"] == 100  # the call site's own need wins
    assert consumer_config(cfg)["fetch.wait.max.ms"] == "20"
    assert consumed["client.id"] == "mine" and consumed["isolation.level"] == "read_committed"
    assert "fetch.wait.max.ms" not in admin_config(cfg) and admin_config(cfg)["client.id"] == "mine"
    assert settings_for(path, "producer") == {"linger.ms": "7", "compression.type": "zstd", "client.id": "mine"}


def test_the_file_names_the_cluster_unless_the_command_line_does(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "bootstrap.servers=broker-a:9092\n")
    monkeypatch.delenv("REPRISE_BOOTSTRAP", raising=False)
    assert Config.from_env(kafka_config=path).bootstrap == "broker-a:9092"
    assert Config.from_env(kafka_config=path, bootstrap="broker-b:9092").bootstrap == "broker-b:9092"
    monkeypatch.setenv("REPRISE_BOOTSTRAP", "broker-c:9092")
    assert Config.from_env(kafka_config=path).bootstrap == "broker-c:9092"
    monkeypatch.delenv("REPRISE_BOOTSTRAP")
    monkeypatch.setenv("REPRISE_KAFKA_CONFIG", path)
    assert Config.from_env().bootstrap == "broker-a:9092"


def test_the_java_clients_properties_file_kafkas_tools_take_is_translated() -> None:
    by_role = parse('security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n'
                    'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
                    'username="alice" password="s3\\"cr=t";\n'
                    'ssl.truststore.type=PEM\nssl.truststore.location=/etc/ca.pem\n'
                    'ssl.endpoint.identification.algorithm=\n')
    assert by_role[None] == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                             "sasl.username": "alice", "sasl.password": 's3"cr=t',
                             "ssl.ca.location": "/etc/ca.pem", "ssl.endpoint.identification.algorithm": "none"}
    with pytest.raises(KafkaConfigError, match="JKS truststore .* ssl.ca.location"):
        parse("ssl.truststore.location=/etc/trust.jks\nssl.truststore.type=JKS\n", "f")
    with pytest.raises(KafkaConfigError, match=r"f:1: only a PLAIN or SCRAM"):
        parse('sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true;\n', "f")


def test_a_translated_file_builds_clients(tmp_path: Path) -> None:
    from reprise.engine.kafka import check_client_settings

    path = write(tmp_path, 'security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.'
                           'kafka.common.security.plain.PlainLoginModule required username="u" password="p";\n')
    check_client_settings(Config.from_env(bootstrap="127.0.0.1:1", kafka_config=path))  # librdkafka takes every key
