"""The changelog (partitions/state/changelog.py) against a real broker and real RocksDB: a store restored from
its deltas is byte for byte the store its log implies, holes, duplicates and overlaps included."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from reprise.engine.config import Config
from reprise.engine.kafka import create_topics
from reprise.partitions.state.changelog import delta_key, delta_range, delta_writes, encode_delta
from reprise.schemas import codec
from tests.harness import ROOT, Engine, Service, call_json
from tests.integration.test_metrics import scrape, total
from tests.integration.test_rebuild import partitions_cli as cli

pytestmark = pytest.mark.kafka
PARTITIONS = 4


def from_changelog(rebuild_output: str) -> int:
    """Records covered by deltas, over all partitions ('... records (N of them by the changelog's deltas)')."""
    return sum(int(line.split(" records (")[1].split()[0]) for line in rebuild_output.splitlines()
               if " rebuilt from " in line)


def read_all(kafka: str, topic: str, partition: int) -> list[Any]:
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": "test-read", "enable.auto.commit": False})
    try:
        start, end = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        if end <= start:
            return []
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        msgs: list[Any] = []
        while not msgs or msgs[-1].offset() < end - 1:
            msgs += [m for m in consumer.consume(1000, 1.0) if m.error() is None]
        return msgs
    finally:
        consumer.close()


def merged(first: Any, second: Any) -> tuple[bytes, bytes]:
    """One delta doing what two consecutive ones did: (key, value)."""
    (base, _), (_, last) = delta_range(first.key()), delta_range(second.key())
    writes = dict(delta_writes(codec.decode("StoreDelta", 1, first.value())))
    writes.update(delta_writes(codec.decode("StoreDelta", 1, second.value())))
    return delta_key(base, last), encode_delta(first.partition(), base, last, writes)


def test_rebuild_from_the_changelog_gives_the_digest_of_the_log(kafka_bootstrap: str, namespace: str,
                                                                tmp_path: Path, service: Service) -> None:
    engine = Engine(kafka_bootstrap, namespace, tmp_path / "engine", env={"REPRISE_CHANGELOG_MAX_DELAY_MS": "0"})
    engine.start()  # a delta per batch: many to doctor below
    engine.register(service.uri)
    try:
        workload(engine)
    finally:
        engine.kill()
    check_rebuilds(engine, kafka_bootstrap, namespace, tmp_path)


def workload(engine: Engine) -> None:
    for i in range(6):
        assert call_json(engine, "/Steps/three", f"r{i}")[0] == 200
        assert call_json(engine, f"/Counter/c{i}/add", i)[0] == 200
    assert call_json(engine, "/Caller/relay", "rr")[0] == 200
    assert call_json(engine, "/Counter/later/stamp/send?delay=1h", "never")[0] == 202
    assert call_json(engine, "/Napper/n/run", 100) == (200, "rested")


def check_rebuilds(engine: Engine, kafka_bootstrap: str, namespace: str, tmp_path: Path) -> None:
    before = cli(kafka_bootstrap, namespace, engine.home, "digest")
    rebuilt = cli(kafka_bootstrap, namespace, engine.home, "rebuild", "--all")
    assert from_changelog(rebuilt) > 0, rebuilt
    assert cli(kafka_bootstrap, namespace, engine.home, "digest", "--no-catch-up") == before
    replayed = cli(kafka_bootstrap, namespace, engine.home, "rebuild", "--all", "--no-changelog")
    assert from_changelog(replayed) == 0, replayed
    assert cli(kafka_bootstrap, namespace, engine.home, "digest", "--no-catch-up") == before

    # The same log beside a changelog with holes (deltas never written), duplicates, a delta overlapping
    # what is applied, two deltas merged into one, and unreadable records: the restore replays the
    # holes, and the digest is the log's.
    copy = f"{namespace}-copy"
    cfg = Config(bootstrap=kafka_bootstrap, namespace=copy, partitions=PARTITIONS)
    create_topics(cfg)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})
    holes = used = 0
    for p in range(PARTITIONS):
        for m in read_all(kafka_bootstrap, f"{namespace}.log", p):
            producer.produce(cfg.log_topic, value=m.value(), key=m.key(), partition=p, headers=m.headers(),
                             timestamp=m.timestamp()[1])
        deltas = read_all(kafka_bootstrap, f"{namespace}.changelog", p)
        doctored: list[tuple[bytes, bytes]] = []
        for i, d in enumerate(deltas):
            if i % 4 == 1:
                holes += 1
                continue
            if i % 4 == 0:  # garbage, and another delta's rows, under a real delta's key, before it: skipped
                doctored.append((d.key(), b"\x07not a delta"))
                doctored.append((d.key(), deltas[i - 1].value() if i else encode_delta(p, 5, 6, {b"k": b"v"})))
            doctored.append((d.key(), d.value()))
            if i % 5 == 0:
                doctored.append((d.key(), d.value()))
            if i % 4 == 2 and i + 1 < len(deltas):
                doctored.append(merged(d, deltas[i + 1]))  # overlaps deltas[i], applied by now: usable
            if i % 4 == 3 and i + 2 < len(deltas):
                doctored.append(merged(deltas[i + 1], deltas[i + 2]))
                used += 1
        for key, value in doctored:
            producer.produce(cfg.changelog_topic, value=value, key=key, partition=p,
                             headers=codec.headers_for("StoreDelta"))
    assert producer.flush(30) == 0
    assert holes > 0 and used > 0
    home = tmp_path / "copy"
    shutil.rmtree(home, ignore_errors=True)
    rebuilt = cli(kafka_bootstrap, copy, home, "rebuild", "--all")
    assert 0 < from_changelog(rebuilt) < sum(int(line.split(" rebuilt from ")[1].split()[0])
                                             for line in rebuilt.splitlines() if " rebuilt from " in line)
    assert cli(kafka_bootstrap, copy, home, "digest", "--no-catch-up").replace(copy, namespace) == before


def test_a_processor_without_its_store_restores_from_the_changelog(engine: Engine, namespace: str) -> None:
    for i in range(8):
        assert call_json(engine, f"/Counter/k{i}/add", 10 + i) == (200, 10 + i)
        assert call_json(engine, "/Steps/three", f"s{i}")[0] == 200
    assert engine.stop() == 0, engine.output()[-3000:]
    shutil.rmtree(engine.home / "data" / namespace / "partitions")  # a new node: no local store at all
    engine.env = {**(engine.env or {}), "REPRISE_CHANGELOG_RESTORE_BEHIND": "1", "REPRISE_SNAPSHOT_INTERVAL_S": "0"}
    engine.start()
    for i in range(8):
        assert call_json(engine, f"/Counter/k{i}/add", 1) == (200, 11 + i)  # the state came back
    restored = [line for line in engine.output().splitlines() if "changelog deltas" in line]
    assert len(restored) == PARTITIONS, engine.output()[-3000:]
    assert any(" from 0 changelog deltas" not in line for line in restored)
    assert total(scrape(engine), "reprise_restore_seconds_count") == PARTITIONS  # one restore timed each


def test_trim_log_lets_go_of_the_log_and_the_deltas_the_snapshots_cover(engine: Engine, kafka_bootstrap: str,
                                                                        namespace: str) -> None:
    for i in range(8):
        assert call_json(engine, f"/Counter/t{i}/add", i)[0] == 200
    assert len(engine.admin_json("/partitions/snapshot", method="POST")["snapshots"]) == PARTITIONS
    for i in range(8):
        assert call_json(engine, f"/Counter/t{i}/add", 1)[0] == 200
    assert engine.stop() == 0, engine.output()[-3000:]
    before = cli(kafka_bootstrap, namespace, engine.home, "digest")

    trimmed = cli(kafka_bootstrap, namespace, engine.home, "trim-log")
    log_starts = [int(line.rsplit(" ", 1)[1]) for line in trimmed.splitlines() if ": log now starts" in line]
    changelog_starts = [int(line.rsplit(" ", 1)[1]) for line in trimmed.splitlines() if "changelog now starts" in line]
    assert len(log_starts) == PARTITIONS and max(log_starts) > 0, trimmed
    assert changelog_starts and max(changelog_starts) > 0, trimmed

    cli(kafka_bootstrap, namespace, engine.home, "rebuild", "--all", "--from-snapshot")
    assert cli(kafka_bootstrap, namespace, engine.home, "digest", "--no-catch-up") == before
    # From the start of the topic there is no way any more: said, not a store with a hole in it
    out = subprocess.run([sys.executable, "-m", "reprise", "partitions", "rebuild", "--all", "--jobs", "1",
                          "--kafka", kafka_bootstrap, "--namespace", namespace, "--home", str(engine.home)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 1 and "the log starts at offset" in out.stderr, (out.stdout, out.stderr[-2000:])


def test_a_changelog_added_to_an_existing_log_gets_the_logs_partition_count(kafka_bootstrap: str,
                                                                             namespace: str) -> None:
    """An engine upgraded onto a log created before the changelog (with another partition count than
    the configured one) gets a changelog that matches the log, so every partition has its deltas."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from reprise.engine.kafka import topic_partitions

    cfg = Config(bootstrap=kafka_bootstrap, namespace=namespace, partitions=8)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(cfg.log_topic, 3, 1)])[cfg.log_topic].result(30)
    assert topic_partitions(cfg, cfg.changelog_topic) == 0
    assert cfg.changelog_topic in create_topics(cfg)
    assert topic_partitions(cfg, cfg.changelog_topic) == topic_partitions(cfg, cfg.log_topic) == 3


def test_a_changelog_with_too_few_partitions_is_not_written_and_said_so(kafka_bootstrap: str, namespace: str,
                                                                        tmp_path: Path, service: Service) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    cfg = Config(bootstrap=kafka_bootstrap, namespace=namespace)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(cfg.changelog_topic, 1, 1)])[cfg.changelog_topic].result(30)
    engine = Engine(kafka_bootstrap, namespace, tmp_path / "engine")  # its log: 4 partitions
    engine.start()
    try:
        engine.register(service.uri)
        for i in range(4):
            assert call_json(engine, f"/Counter/x{i}/add", 1) == (200, 1)  # served all the same
        assert "has fewer partitions than" in engine.output()
    finally:
        engine.kill()
    assert read_all(kafka_bootstrap, cfg.changelog_topic, 0) == []
