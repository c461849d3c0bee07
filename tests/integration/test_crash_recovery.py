"""Crashes: the engine or the service killed with SIGKILL mid-invocation, and clean restarts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reprise.partitions.core.tables import Tables
from reprise.partitions.core.transaction import Transaction, applied_offset
from reprise.partitions.state.rocks_store import RocksStore
from tests.harness import Background, Engine, Service, call_json, count

pytestmark = pytest.mark.kafka


def wait_until(cond, timeout: float = 60.0, what: str = "condition") -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_engine_killed_during_a_sleep_between_two_steps(engine: Engine, effects: Path) -> None:
    pending = Background(call_json, engine, "/Steps/sleepy", {"name": "k9", "ms": 3000}, 120)
    wait_until(lambda: count(effects, "k9.before") == 1, what="the first step")
    time.sleep(0.3)  # the invocation is now suspended on its durable sleep
    engine.kill()
    status, _ = pending.result()
    assert status != 200  # the client's connection died with the engine
    engine.start()
    wait_until(lambda: count(effects, "k9.after") == 1, 60, "the step after the sleep")
    time.sleep(1.0)  # give a wrongly repeated step the chance to show up
    assert count(effects, "k9.before") == 1
    assert count(effects, "k9.after") == 1


def test_service_killed_mid_attempt_is_retried(engine: Engine, service: Service, effects: Path,
                                              tmp_path: Path) -> None:
    pending = Background(call_json, engine, "/Steps/slow", "sk", 120)
    wait_until(lambda: count(effects, "sk.started") == 1, what="the slow step to start")
    service.kill()
    restarted = Service(effects, tmp_path / "service2.log", port=service.port, env={"REPRISE_TEST_SLOW_S": "0.2"})
    restarted.start()
    try:
        assert pending.result() == (200, "done")
        assert count(effects, "sk.started") == 2  # the interrupted run ran again (at least once)
        assert count(effects, "sk.done") == 1
    finally:
        restarted.kill()


def _rows(home: Path, namespace: str) -> list[dict]:
    rows = []
    for db in sorted((home / "data" / namespace / "partitions").iterdir()):
        store = RocksStore(db)
        tables = Tables(Transaction(store))
        rows += [tables.invocations.get(k[3:].decode()) for k, _ in store.scan(b"in/")]
        store.close()
    return rows


def _snapshot(home: Path, namespace: str) -> tuple[dict[int, int], dict[str, str]]:
    offsets, statuses = {}, {}
    for db in sorted((home / "data" / namespace / "partitions").iterdir()):
        store = RocksStore(db)
        offsets[int(db.name[1:])] = applied_offset(store)
        tables = Tables(Transaction(store))
        for k, _ in store.scan(b"in/"):
            row = tables.invocations.get(k[3:].decode())
            statuses[row["invocation_id"]] = row["status"]
        store.close()
    return offsets, statuses


def test_stop_and_start_keeps_finished_invocations_and_offsets(engine: Engine, effects: Path,
                                                              namespace: str) -> None:
    for name in ("s1", "s2", "s3"):
        assert call_json(engine, "/Steps/three", name) == (200, f"{name}:ABC")
    assert engine.stop() == 0, engine.output()[-3000:]
    offsets, statuses = _snapshot(engine.home, namespace)
    assert len(statuses) == 3 and set(statuses.values()) == {"COMPLETED"}
    assert any(o >= 0 for o in offsets.values())
    engine.start()
    assert call_json(engine, "/Steps/three", "s4") == (200, "s4:ABC")
    assert engine.stop() == 0
    offsets2, statuses2 = _snapshot(engine.home, namespace)
    assert all(offsets2[p] >= offsets[p] for p in offsets)
    assert {k: v for k, v in statuses2.items() if k in statuses} == statuses
    assert len(statuses2) == 4
    for name in ("s1", "s2", "s3", "s4"):
        assert [count(effects, f"{name}.{s}") for s in "abc"] == [1, 1, 1]


def test_outbox_written_but_not_shipped_ships_on_restart(kafka_bootstrap: str, namespace: str, tmp_path: Path,
                                                         service: Service, effects: Path) -> None:
    """The engine commits a call into its outbox and 'dies' before shipping it: the restart ships it,
    the callee runs once, the caller completes."""
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "eng", env={"REPRISE_FAULT_HOLD_OUTBOX": "1"})
    eng.start()
    eng.register(service.uri)
    assert call_json(eng, "/Caller/relay/send", "ob")[0] == 202
    time.sleep(2.0)
    assert count(effects, "ob.a") == 0, "the call must still sit in the outbox"
    eng.kill()
    healthy = Engine(kafka_bootstrap, namespace, tmp_path / "eng")
    healthy.start()
    try:
        wait_until(lambda: count(effects, "ob.c") == 1, 60, "the callee to run")
        time.sleep(1.0)
        assert [count(effects, f"ob.{s}") for s in "abc"] == [1, 1, 1]
        assert healthy.stop() == 0
        rows = _rows(healthy.home, namespace)
        [relay] = [r for r in rows if r["service"] == "Caller"]
        assert relay["status"] == "COMPLETED" and relay["result_value"] == b'"relayed ob:ABC"'
    finally:
        healthy.kill()
