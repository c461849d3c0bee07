"""A Kafka client properties file (--kafka-config / REPRISE_KAFKA_CONFIG) against the real broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from tests.harness import ROOT, Engine, Service, call_json

pytestmark = pytest.mark.kafka


def reprise(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reprise", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_the_file_names_the_cluster_and_its_settings_reach_the_engines_clients(
        kafka_bootstrap: str, namespace: str, tmp_path: Path, service: Service) -> None:
    props = tmp_path / "client.properties"
    props.write_text(f"# as a managed Kafka hands it out\nbootstrap.servers={kafka_bootstrap}\n"
                     f"consumer.client.id=kcfg-{namespace}\nproducer.compression.type=zstd\nproducer.linger.ms=2\n")
    created = reprise("topics", "create", "--namespace", namespace, "--kafka-config", str(props))
    assert created.returncode == 0, created.stderr  # (which bootstrap wins is unit-tested: the default is this broker)
    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert f"{namespace}.log" in topics

    env = {"REPRISE_KAFKA_CONFIG": str(props)}  # split roles: the processor joins its group (dev assigns)
    ingress = Engine(kafka_bootstrap, namespace, tmp_path / "ingress", env=env, role="ingress")
    processor = Engine(kafka_bootstrap, namespace, tmp_path / "processor", env=env, role="processor")
    try:
        ingress.start()
        processor.start()
        ingress.register(service.uri)
        assert call_json(ingress, "/Steps/three", "kc") == (200, "kc:ABC")
        group = f"{namespace}.processors"
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})  # kept alive while the future runs
        members = admin.describe_consumer_groups([group])[group].result(30).members
        # the operator's id first, then the processor's admin API for cluster-wide reads (engine/cluster_members.py)
        assert [m.client_id.split(" ")[0] for m in members] == [f"kcfg-{namespace}"], members
        assert "reprise-processor admin=http://127.0.0.1:" in members[0].client_id, members
    finally:
        processor.kill()
        ingress.kill()

@pytest.mark.parametrize(("text", "message"), [
    ("producer.no.such.setting=1\n", 'No such configuration property: "no.such.setting"'),
    ("linger.ms=1\nacks=1\n", ":2: acks is set by Reprise"),
    ("security.protocol\n", ":1: expected key=value"),
])
def test_a_bad_file_stops_the_command_with_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    props = tmp_path / "bad.properties"
    props.write_text(text)
    result = reprise("topics", "create", "--namespace", "never-created", "--kafka-config", str(props))
    assert result.returncode == 2
    assert result.stderr.startswith(f"reprise: {props}") and message in result.stderr
