"""The processor's metrics fed from the pure core and from its stores: invocations completed by
outcome (apply() reports them, and takes back those of a record it rolls back), labelled only with
registered names; the sampled store gauges; librdkafka's statistics kept per client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from reprise.engine.config import Config
from reprise.engine.kafka_stats import KafkaStats, summarize
from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import encode_message
from reprise.partitions import metrics
from reprise.partitions.core import lifecycle
from reprise.partitions.core.apply import BatchResult, LogRecord, apply_batch
from reprise.partitions.core.transaction import Transaction
from reprise.partitions.leader.partition_gauges import PartitionGauges
from reprise.partitions.state.changelog import ChangelogWriter
from reprise.partitions.state.rocks_store import RocksStore
from reprise.schemas import codec
from tests.unit.apply_helpers import N, Partition, inv_on, new_partition, output


def apply(p: Partition, kind: str, value: dict[str, Any]) -> BatchResult:
    p.offset += 1
    version = codec.CURRENT[kind]
    tx = Transaction(p.store)
    result = apply_batch(tx, p.partition, N, [LogRecord(kind, version, codec.decode(kind, version, codec.encode(
        kind, value)), p.offset, 1_000)])
    tx.commit(p.offset)
    return result


def invoke(p: Partition, inv: str) -> None:
    apply(p, "Invoke", {"invocation_id": inv, "service": "Svc", "handler": "h", "input": b'"x"', "created_ms": 1,
                        "reply_to": None})


def ended(p: Partition, inv: str, entry: bytes) -> BatchResult:
    return apply(p, "InvokerEffects", {"invocation_id": inv, "attempt": 1, "epoch": 1, "timestamp_ms": 2_000,
                                       "deployment_id": "dp_1", "entries": [entry], "outcome": {}})


def test_apply_reports_each_completion_with_its_service_handler_and_outcome() -> None:
    p = new_partition()
    ok = inv_on(0)
    invoke(p, ok)
    assert [c[1:] for c in ended(p, ok, output(b'"ok"')).completed] == [("Svc", "h", "succeeded")]
    bad = _another_id(ok)
    invoke(p, bad)
    failure = encode_message(pb.OutputCommandMessage(failure=pb.Failure(code=400, message="no")))
    assert [c[1:] for c in ended(p, bad, failure).completed] == [("Svc", "h", "failed")]
    killed = _another_id(ok, bad)
    invoke(p, killed)
    result = apply(p, "AdminCommand", {"invocation_id": killed, "command": "kill", "reply_to": None})
    assert [(c[0], *c[1:]) for c in result.completed] == [(p.offset, "Svc", "h", "killed")]
    assert apply(p, "AdminCommand", {"invocation_id": killed, "command": "kill", "reply_to": None}).completed == []


def test_a_record_rolled_back_takes_its_completion_back(monkeypatch: pytest.MonkeyPatch) -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)

    def release_fails(*_a: Any) -> None:  # after complete() recorded the completion
        raise ValueError("the record fails after completing its invocation")

    monkeypatch.setattr(lifecycle, "release", release_fails)
    result = ended(p, inv, output(b'"ok"'))
    assert result.rejected and result.completed == []


def _another_id(*taken: str) -> str:
    from reprise.engine.ids import InvocationId

    for i in range(10_000):
        iid = str(InvocationId.derived(f"other{i}", "test", i))
        if InvocationId.parse(iid).partition(N) == 0 and iid not in taken:
            return iid
    raise AssertionError


def samples(collector: Any = None) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = REGISTRY
    if collector is not None:
        registry = CollectorRegistry()
        registry.register(collector)
    text = generate_latest(registry).decode()
    return {(s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text)
            for s in f.samples}


def test_completions_are_labelled_only_with_registered_services_and_handlers() -> None:
    completed = metrics.InvocationsCompleted()
    completed.label_registered(lambda service, handler: (service, handler) == ("Greeter", "greet"))
    completed.count([(1, "Greeter", "greet", "succeeded"), (2, "Greeter", "greet", "succeeded"),
                     (3, "Greeter", "made-up", "failed"), (4, "Invented", "x", "succeeded")])
    s = samples(completed)
    name = "reprise_invocations_completed_total"
    assert s[(name, frozenset({"service": "Greeter", "handler": "greet", "outcome": "succeeded"}.items()))] == 2
    assert s[(name, frozenset({"service": "", "handler": "", "outcome": "succeeded"}.items()))] == 1
    assert s[(name, frozenset({"service": "", "handler": "", "outcome": "failed"}.items()))] == 1
    assert len([k for k in s if k[0] == name]) == 3


def test_partition_gauges_sample_sizes_timers_outbox_and_changelog_lag(tmp_path: Path) -> None:
    import threading

    store = RocksStore(tmp_path / "p7")
    store.write({b"tm/000000000001000/a": b"t", b"tm/000000000002000/b": b"t", b"ob/00000000000000000004": b"o",
                 b"meta/outbox_next": b"5", b"meta/outbox_head": b"2"})
    changelog = ChangelogWriter(Config(namespace="unit"), producer=None, max_delay_s=3600)  # type: ignore[arg-type]
    changelog.record(7, 10, 16, {b"k": b"v"})
    gauges = PartitionGauges({7: store}, threading.Lock(), changelog, 1.0, threading.Event())
    gauges.sample()

    def gauge(name: str) -> float | None:
        return samples().get((name, frozenset({("partition", "7")})))

    assert gauge("reprise_timers_pending") == 2
    assert gauge("reprise_outbox_backlog") == 3
    assert gauge("reprise_changelog_lag_records") == 6
    assert gauge("reprise_store_memtable_bytes") > 0 and gauge("reprise_store_keys") == 5
    assert gauge("reprise_store_live_data_bytes") == 0  # nothing flushed yet
    store.flush()
    gauges.sample()
    assert gauge("reprise_store_live_data_bytes") > 0 and gauge("reprise_store_sst_bytes") > 0
    metrics.forget_partition(7)  # moved away: its series go
    assert gauge("reprise_timers_pending") is None and gauge("reprise_store_keys") is None
    store.close()


STATS = {
    "name": "rdkafka#producer-1", "type": "producer", "msg_cnt": 3, "replyq": 1, "txmsgs": 120, "rxmsgs": 0,
    "brokers": {
        "127.0.0.1:9092/1": {"nodeid": 1, "source": "learned", "state": "UP",
                             "rtt": {"avg": 1500, "p99": 4000}},
        "127.0.0.1:9092/bootstrap": {"nodeid": -1, "source": "configured", "state": "UP", "rtt": {"avg": 9}},
        "GroupCoordinator": {"nodeid": 1, "source": "logical", "state": "UP", "rtt": {"avg": 7}},
    },
    "topics": {"ns.log": {"partitions": {"0": {"consumer_lag": 5, "fetchq_cnt": 2},
                                         "1": {"consumer_lag": -1, "fetchq_cnt": 0},
                                         "-1": {"consumer_lag": 0, "fetchq_cnt": 0}}}},
}


def test_librdkafka_statistics_keep_a_few_numbers_per_client() -> None:
    stats = KafkaStats()
    assert stats.settings(Config(kafka_stats_interval_ms=0), "c") == {}
    settings = stats.settings(Config(kafka_stats_interval_ms=1000), "processor-consumer")
    assert settings["statistics.interval.ms"] == 1000
    settings["stats_cb"](json.dumps(STATS))
    settings["stats_cb"]("not json")  # an unreadable report keeps the last good one
    s = samples(stats)

    def value(name: str, **labels: str) -> float:
        return s[(name, frozenset({"client": "processor-consumer", **labels}.items()))]

    assert value("reprise_kafka_queue_messages") == 3 and value("reprise_kafka_reply_queue_events") == 1
    assert value("reprise_kafka_tx_messages_total") == 120 and value("reprise_kafka_rx_messages_total") == 0
    assert value("reprise_kafka_broker_rtt_seconds", broker="1") == pytest.approx(0.0015)
    assert value("reprise_kafka_broker_rtt_p99_seconds", broker="1") == pytest.approx(0.004)
    assert value("reprise_kafka_broker_up", broker="1") == 1
    assert len([k for k in s if k[0] == "reprise_kafka_broker_up"]) == 1  # no bootstrap or coordinator alias
    assert value("reprise_kafka_consumer_lag_records", topic="ns.log", partition="0") == 5
    assert value("reprise_kafka_fetch_queue_messages", topic="ns.log", partition="0") == 2
    assert len([k for k in s if k[0] == "reprise_kafka_consumer_lag_records"]) == 1  # not consumed here: none
    assert summarize({}).brokers == []


def test_timers_are_counted_in_steps_up_to_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from reprise.partitions.leader import partition_gauges

    store = RocksStore(tmp_path / "p8")
    store.write({b"tm/%015d/t" % i: b"t" for i in range(25)} | {b"ob/x": b"o", b"in/y": b"i"})
    assert store.count(b"tm/", 10) == (10, b"tm/000000000000010/t")
    assert store.count(b"tm/", 100, b"tm/000000000000020/t") == (5, None)
    monkeypatch.setattr(partition_gauges, "_TIMERS_PER_LOCK", 4)
    gauges = PartitionGauges({8: store}, threading.Lock(), None, 1.0, threading.Event())
    assert gauges._count_timers(8, store) == 25  # noqa: SLF001
    monkeypatch.setattr(partition_gauges, "TIMERS_COUNTED_UP_TO", 10)
    assert gauges._count_timers(8, store) == 10  # noqa: SLF001
    assert PartitionGauges({}, threading.Lock(), None, 1.0, threading.Event())._count_timers(8, store) is None  # noqa: SLF001
    store.close()
