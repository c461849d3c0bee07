"""A store ahead of its log (the topic deleted and recreated, a replica's tail lost) is refused at
start with an error naming the partition, the store's offset, the log's end and what to do; never
resumed on, which would fold another log's records over its state."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from reprise.engine.config import Config
from reprise.engine.kafka import create_topics
from reprise.partitions.core.transaction import applied_offset
from reprise.partitions.state.rocks_store import RocksStore
from reprise.partitions.state.store_files import store_path
from tests.harness import ROOT, Engine, Proc, Service, call_json
from tests.integration.test_rebuild import partitions_cli as cli

pytestmark = pytest.mark.kafka
PARTITIONS = 4


def build_then_recreate_log(kafka: str, namespace: str, tmp_path: Path,
                            service: Service) -> tuple[Engine, dict[int, int]]:
    """An engine's stores after some work, then its log topic deleted and created again, empty.
    Returns the engine (stopped) and each partition's applied offset."""
    engine = Engine(kafka, namespace, tmp_path / "engine", env={"REPRISE_SNAPSHOT_INTERVAL_S": "0"})
    engine.start()
    engine.register(service.uri)
    for i in range(8):
        assert call_json(engine, f"/Counter/a{i}/add", i) == (200, i)
    assert engine.stop() == 0, engine.output()[-3000:]
    cfg = Config(bootstrap=kafka, namespace=namespace, partitions=PARTITIONS, home=engine.home)
    offsets = {}
    for p in range(PARTITIONS):
        store = RocksStore(store_path(cfg, p))
        offsets[p] = applied_offset(store)
        store.close()
    admin = AdminClient({"bootstrap.servers": kafka})
    admin.delete_topics([cfg.log_topic], operation_timeout=30)[cfg.log_topic].result(30)
    deadline = time.monotonic() + 60
    while True:
        try:
            if cfg.log_topic in create_topics(cfg):
                break
        except Exception:  # noqa: BLE001 - the deletion is still under way
            pass
        assert time.monotonic() < deadline, "the log topic could not be created again"
        time.sleep(0.5)
    return engine, offsets


def refused(engine: Engine) -> str:
    """Start the engine on its stores; it must exit non-zero; its output."""
    engine.log_path.unlink(missing_ok=True)
    Proc.start(engine)
    assert engine.popen is not None
    try:
        code = engine.popen.wait(90)
    except subprocess.TimeoutExpired:
        engine.kill()
        raise AssertionError("the engine started on stores ahead of its log:\n" + engine.output()[-3000:]) from None
    assert code != 0, engine.output()[-3000:]
    return engine.output()


def test_a_store_ahead_of_a_recreated_log_is_refused(kafka_bootstrap: str, namespace: str, tmp_path: Path,
                                                     service: Service) -> None:
    engine, offsets = build_then_recreate_log(kafka_bootstrap, namespace, tmp_path, service)
    out = refused(engine)
    said = [line for line in out.splitlines() if "is ahead of its log" in line]
    assert said, out[-3000:]
    p = int(said[-1].split("partition ")[1].split(":")[0])
    assert f"has applied up to offset {offsets[p]}, but the log {namespace}.log ends at offset 0" in said[-1]
    assert f"reprise partitions rebuild --partition {p}" in said[-1]

    # The CLI says the same instead of digesting a store that is not the log's
    digest = subprocess.run([sys.executable, "-m", "reprise", "partitions", "digest", "--kafka", kafka_bootstrap,
                             "--namespace", namespace, "--home", str(engine.home)],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert digest.returncode == 1 and "is ahead of its log" in digest.stderr, (digest.stdout, digest.stderr[-2000:])

    # Doing what it says: rebuilt from the (new, empty) log, the engine starts and serves
    cli(kafka_bootstrap, namespace, engine.home, "rebuild", "--all")
    engine.log_path.unlink(missing_ok=True)
    engine.start()
    try:
        engine.register(service.uri)
        assert call_json(engine, "/Counter/a1/add", 5) == (200, 5)  # the new log's state: nothing before
    finally:
        engine.kill()


def test_a_log_holding_other_records_at_the_stores_offset_is_refused(kafka_bootstrap: str, namespace: str,
                                                                     tmp_path: Path, service: Service) -> None:
    """Recreated and already written past the store's offset: the offsets fit, the records do not."""
    engine, offsets = build_then_recreate_log(kafka_bootstrap, namespace, tmp_path, service)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})
    for p, offset in offsets.items():
        for i in range(offset + 3):
            producer.produce(f"{namespace}.log", value=b"another log's record %d" % i, partition=p)
    assert producer.flush(30) == 0
    out = refused(engine)
    said = [line for line in out.splitlines() if "is not the one the store followed" in line]
    assert said, out[-3000:]
    p = int(said[-1].split("partition ")[1].split(":")[0])
    assert f"applied offset {offsets[p]} from a record stamped" in said[-1]
    assert f"ending at offset {offsets[p] + 3}" in said[-1] and "reprise partitions rebuild" in said[-1]

    # The changelog still holds the old log's deltas, and they fit the new log's offsets: a rebuild
    # that restores from them is refused too, and says to leave the changelog out
    rebuild = subprocess.run([sys.executable, "-m", "reprise", "partitions", "rebuild", "--all", "--jobs", "1",
                              "--kafka", kafka_bootstrap, "--namespace", namespace, "--home", str(engine.home)],
                             capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert rebuild.returncode == 1 and "whose deltas are another log's" in rebuild.stderr, rebuild.stderr[-2000:]
    assert "--no-changelog" in rebuild.stderr
    cli(kafka_bootstrap, namespace, engine.home, "rebuild", "--all", "--no-changelog")
    assert cli(kafka_bootstrap, namespace, engine.home, "digest").count(" digest ") == PARTITIONS
