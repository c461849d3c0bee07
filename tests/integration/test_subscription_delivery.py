"""A subscription never skips a source record silently: a record that cannot become an Invoke (too
large for the log, refused by Kafka on delivery) is dead-lettered, the worker goes on, and an
offset is committed only after the record's Invoke or dead letter was acknowledged."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from tests.harness import Engine, Service, post
from tests.integration.test_crash_recovery import wait_until
from tests.integration.test_fail_loud import SMALL_LIMIT, produce, read_all
from tests.integration.test_kafka_native import state

pytestmark = pytest.mark.kafka


def items(eng: Engine, key: str) -> list[object]:
    return json.loads(state(eng, "Counter", key).get("items", "[]"))


def test_a_record_too_large_for_the_log_is_dead_lettered_and_the_rest_goes_on(
        kafka_bootstrap: str, namespace: str, tmp_path: Path, service: Service) -> None:
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "engine", partitions=2,
                 env={"REPRISE_MAX_MESSAGE_BYTES": str(SMALL_LIMIT)})
    eng.start()
    try:
        eng.register(service.uri)
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        source = f"{namespace}.orders"
        admin.create_topics([NewTopic(source, 1, 1, config={"max.message.bytes": str(4 * SMALL_LIMIT)})])[
            source].result(30)
        body = json.dumps({"source": f"kafka://default/{source}", "sink": "service://Counter/append"}).encode()
        assert post(eng.admin + "/subscriptions", body, {"content-type": "application/json"})[0] == 201
        too_large = json.dumps("x" * (3 * SMALL_LIMIT)).encode()  # refused by the engine's producer
        for value in (b"0", too_large, b"1"):
            produce(kafka_bootstrap, source, value, key=b"alice")
        wait_until(lambda: items(eng, "alice") == [0, 1], 90, "the records around the large one")
        (dead,) = read_all(kafka_bootstrap, f"{namespace}.dead-letters", 1)
        headers = dict(dead.headers())
        assert headers["reprise-source"] == f"{source}/0/1".encode() and dead.value() is None
        assert headers["reprise-dead-letter-value-omitted"] == str(len(too_large)).encode()

        # Now a record that the producer accepts and the broker refuses on delivery: the log's limit
        # lowered under the engine's feet. Its Invoke is never acknowledged, so it must not be
        # committed as if it had been: it is dead-lettered (whole: it fits the dead-letter topic).
        resource = ConfigResource(ConfigResource.Type.TOPIC, f"{namespace}.log", incremental_configs=[
            ConfigEntry("max.message.bytes", "20000", incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([resource])[resource].result(30)
        refused = json.dumps(base64.b64encode(os.urandom(37_500)).decode()).encode()  # 50 kB, incompressible
        produce(kafka_bootstrap, source, refused, key=b"alice")
        produce(kafka_bootstrap, source, b"2", key=b"alice")
        wait_until(lambda: items(eng, "alice") == [0, 1, 2], 90, "the record after the refused one")
        dead_letters = read_all(kafka_bootstrap, f"{namespace}.dead-letters", 2)
        assert len(dead_letters) == 2, dead_letters
        assert dict(dead_letters[1].headers())["reprise-source"] == f"{source}/0/3".encode()
        assert dead_letters[1].value() == refused
    finally:
        eng.kill()
