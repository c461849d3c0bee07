"""A forged leadership claim on the log does not stop a partition: its leader claims again above it."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from reprise.engine.kafka import produce_record
from reprise.engine.partitioning import partition_for_key
from tests.harness import Engine, call_json
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka


def _partition(engine: Engine, p: int) -> dict:
    return next(row for row in engine.admin_json("/partitions")["partitions"] if row["partition"] == p)


def test_a_forged_leader_epoch_does_not_stop_the_partition(engine: Engine, kafka_bootstrap: str,
                                                           namespace: str) -> None:
    key = next(f"f{i}" for i in range(1000) if partition_for_key(f"f{i}", 4) == 0)
    assert call_json(engine, f"/Counter/{key}/add", 1) == (200, 1)
    epoch = _partition(engine, 0)["epoch"]
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    forged = epoch + 5
    produce_record(producer, f"{namespace}.log", 0, "LeaderEpoch",
                   {"partition": 0, "epoch": forged, "owner": "forger", "timestamp_ms": 0})
    assert producer.flush(30) == 0
    wait_until(lambda: f"epoch {forged} of forger is newer than ours; stepping down" in engine.output(), 30,
               "the leader to step down")
    wait_until(lambda: _partition(engine, 0)["leading"], 30, "the leader to lead again")
    assert _partition(engine, 0)["epoch"] == forged + 1
    # attempts, a durable timer and the reply's outbox all run on partition 0 again
    assert call_json(engine, f"/Counter/{key}/hold", 300, timeout=60) == (200, "held")
    assert call_json(engine, f"/Counter/{key}/add", 1, timeout=60) == (200, 42)
