"""The self-provisioned broker: start, idempotent start, produce/consume, restart keeps data, stop."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from reprise.deploy.kafka.local import LocalKafka

pytestmark = pytest.mark.kafka


def test_start_restart_and_stop_keep_data(tmp_path: Path) -> None:
    kafka = LocalKafka(home=tmp_path, port=19092, controller_port=19093, heap="256m")
    try:
        assert kafka.start() == "127.0.0.1:19092"
        pid = kafka.pid()
        assert kafka.status() == f"running pid {pid} on 127.0.0.1:19092"
        assert kafka.start() == "127.0.0.1:19092" and kafka.pid() == pid  # already running: no-op
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
        admin.create_topics([NewTopic("kept", 1, 1)])["kept"].result(30)
        p = Producer({"bootstrap.servers": kafka.bootstrap, "acks": "all"})
        p.produce("kept", b"hello", partition=0)
        assert p.flush(30) == 0
        assert kafka.stop() is True
        assert kafka.status() == "stopped" and kafka.stop() is False
        kafka.start()
        c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "t"})
        c.assign([TopicPartition("kept", 0, 0)])
        msgs = [m for _ in range(20) for m in c.consume(10, 1.0) if m.error() is None][:1]
        c.close()
        assert [m.value() for m in msgs] == [b"hello"]
    finally:
        kafka.stop()
