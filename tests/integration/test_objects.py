"""Virtual Objects end to end: per-key order, shared handlers, state, calls between objects."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.harness import Background, Engine, call_json, count, post
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka


@pytest.fixture
def engine(module_engine: Engine) -> Engine:
    """One engine for the module (tests that kill it start it again): each test uses keys and effect
    names of its own."""
    return module_engine


@pytest.fixture
def effects(module_effects: Path) -> Path:
    return module_effects


def test_200_concurrent_adds_on_one_key_do_not_interleave(engine: Engine) -> None:
    with ThreadPoolExecutor(64) as pool:
        results = list(pool.map(lambda _: call_json(engine, "/Counter/hot/add", 1, 180), range(200)))
    assert all(status == 200 for status, _ in results), results[:5]
    assert sorted(v for _, v in results) == list(range(1, 201))
    assert call_json(engine, "/Counter/hot/get") == (200, 200)


def test_shared_handler_answers_while_exclusive_is_suspended(engine: Engine) -> None:
    held = Background(call_json, engine, "/Counter/k1/hold", 3000, 60)
    time.sleep(1.0)
    started = time.monotonic()
    assert call_json(engine, "/Counter/k1/get") == (200, 41)  # sees the suspended handler's write
    assert time.monotonic() - started < 2.5, "the shared read did not wait for the exclusive handler"
    queued = Background(call_json, engine, "/Counter/k1/add", 1, 60)
    assert held.result() == (200, "held")
    assert queued.result() == (200, 42)  # the exclusive add ran after hold, in order


def test_shared_handler_cannot_write(engine: Engine) -> None:
    status, out = call_json(engine, "/Counter/k2/sneaky")
    assert status == 400 and "shared handler" in out["message"] and "may read state but not write" in out["message"]
    assert call_json(engine, "/Counter/k2/get") == (200, 0)


def test_greeter_object(engine: Engine) -> None:
    assert call_json(engine, "/GreeterObject/ada/greet", "Hi") == (200, "Hi ada for the 1. time")
    assert call_json(engine, "/GreeterObject/ada/greet", "Hi") == (200, "Hi ada for the 2. time")
    assert call_json(engine, "/GreeterObject/bob/greet", "Hi") == (200, "Hi bob for the 1. time")
    assert call_json(engine, "/GreeterObject/ada/ungreet")[0] == 200
    assert call_json(engine, "/GreeterObject/ada/getGreetCount") == (200, 1)


def test_cart_and_ticket(engine: Engine) -> None:
    assert call_json(engine, "/CartObject/alice/addTicket", "seat-2B") == (200, True)
    assert call_json(engine, "/CartObject/bob/addTicket", "seat-2B") == (200, False)
    assert call_json(engine, "/CartObject/alice/getTickets") == (200, ["seat-2B"])
    assert call_json(engine, "/CartObject/bob/getTickets") == (200, [])


def test_lazy_state_round_trip(kafka_bootstrap: str, namespace: str, tmp_path: Path, service) -> None:  # noqa: ANN001
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "lazy", env={"REPRISE_EAGER_STATE_LIMIT_BYTES": "1000"})
    eng.start()
    try:
        eng.register(service.uri)
        assert call_json(eng, "/Counter/big/fill", {"n": 5, "size": 600}) == (200, 5)
        assert call_json(eng, "/Counter/big/total") == (200, 3000)
    finally:
        eng.kill()


def test_call_to_unknown_service_fails_the_caller_clearly(engine: Engine) -> None:
    status, out = call_json(engine, "/Caller/call_unknown")
    assert status == 404 and "unknown service 'NoSuchService'" in out["message"]


def test_delayed_send_waits_and_survives_a_restart(engine: Engine, effects: Path) -> None:
    sent_at = int(time.time() * 1000)
    status, body = post(engine.ingress + "/Counter/d1/stamp/send?delay=3s", b'"d1.stamp"',
                        {"content-type": "application/json"})
    assert status == 202 and json.loads(body)["status"] == "Accepted"
    time.sleep(1.0)
    engine.kill()
    assert count(effects, "d1.stamp") == 0
    engine.start()
    wait_until(lambda: count(effects, "d1.stamp") == 1, 60, "the delayed send")
    fired_at = int((effects / "d1.stamp").read_text().split()[0])
    assert fired_at >= sent_at + 3000
    time.sleep(0.5)
    assert count(effects, "d1.stamp") == 1


def test_object_calls_object_across_partitions_with_a_kill_in_between(engine: Engine, effects: Path) -> None:
    from reprise.engine.partitioning import partition_for_key

    caller_key, target = "caller-1", next(f"t{i}" for i in range(100)
                                          if partition_for_key(f"t{i}", 4) != partition_for_key("caller-1", 4))
    req = {"target": target, "name": "x1", "ms": 2500}
    pending = Background(call_json, engine, f"/Counter/{caller_key}/call_other", req, 90)
    wait_until(lambda: count(effects, "x1.callee.before") == 1, what="the callee's first step")
    time.sleep(0.3)
    engine.kill()
    pending.result()
    engine.start()
    wait_until(lambda: count(effects, "x1.caller") == 1, 60, "the caller to finish")
    time.sleep(0.5)
    assert count(effects, "x1.callee.before") == 1
    assert count(effects, "x1.callee.after") == 1
    assert count(effects, "x1.caller") == 1


def test_idempotent_calls_run_the_callee_once(engine: Engine, effects: Path) -> None:
    assert call_json(engine, "/Caller/idem", "ik") == (200, ["ik:ABC", "ik:ABC"])
    assert [count(effects, f"ik.{s}") for s in "abc"] == [1, 1, 1]


def test_delayed_one_way_call_from_a_handler(engine: Engine, effects: Path) -> None:
    sent_at = int(time.time() * 1000)
    assert call_json(engine, "/Caller/later", {"key": "d2", "name": "d2.stamp", "ms": 1500}) == (200, "scheduled")
    assert count(effects, "d2.stamp") == 0
    wait_until(lambda: count(effects, "d2.stamp") == 1, 30, "the delayed call")
    assert int((effects / "d2.stamp").read_text().split()[0]) >= sent_at + 1500


def _set_state(engine: Engine, service: str, body: object, prefix: str = "") -> tuple[int, object]:
    status, raw = post(f"{engine.admin}{prefix}/services/{service}/state", json.dumps(body).encode(),
                       {"content-type": "application/json"})
    return status, json.loads(raw) if raw else None


def test_admin_sets_an_objects_state_through_the_log(engine: Engine) -> None:
    """Restate's POST /services/{s}/state: the handler, the state read and a version precondition see it."""
    from reprise.engine.state_version import state_version

    assert call_json(engine, "/Counter/setme/add", 5) == (200, 5)
    new = {"object_key": "setme", "new_state": {"value": list(b"41"), "note": list(b'"hi"')}}
    assert _set_state(engine, "Counter", new, "/v4") == (202, None)  # Restate's CLI path, empty body
    assert call_json(engine, "/Counter/setme/get") == (200, 41)
    assert call_json(engine, "/Counter/setme/add", 1) == (200, 42)
    assert engine.admin_json("/services/Counter/state/setme")["state"] == {"value": "42", "note": '"hi"'}
    stale = state_version([(b"value", b"41"), (b"note", b'"hi"')])
    status, body = _set_state(engine, "Counter", {**new, "new_state": {"value": list(b"0")}, "version": stale})
    assert status == 409 and set(body) == {"message", "restate_code"}  # type: ignore[arg-type]
    current = state_version([(b"value", b"42"), (b"note", b'"hi"')])
    assert _set_state(engine, "Counter", {**new, "new_state": {"value": list(b"7")}, "version": current})[0] == 202
    assert engine.admin_json("/services/Counter/state/setme")["state"] == {"value": "7"}  # "note" is gone
    assert _set_state(engine, "Steps", new)[0] == 400  # a plain service has no state
    assert _set_state(engine, "Nope", new)[0] == 404
    assert _set_state(engine, "Counter", {"object_key": "setme", "new_state": {"value": [256]}})[0] == 400
    assert _set_state(engine, "Counter", {"object_key": "k" * 70_000, "new_state": {}})[0] == 400  # not a 504


def test_admin_state_waits_in_the_inbox_while_an_exclusive_handler_holds_the_key(engine: Engine) -> None:
    status, raw = post(engine.ingress + "/Counter/held/hold/send", b"120000", {"content-type": "application/json"})
    assert status == 202, raw
    inv = json.loads(raw)["invocationId"]
    # the Invoke is in the log before this record (same key, same partition): the key is held when it applies
    assert _set_state(engine, "Counter", {"object_key": "held", "new_state": {"value": list(b"1")}}) == (202, None)
    wait_until(lambda: call_json(engine, "/Counter/held/get") == (200, 41), 30, "hold's own write")
    assert call_json(engine, "/Counter/held/get") == (200, 41), "the holder's view is not changed under it"
    # the waiting state change is not an invocation: the key's inbox, as SQL shows it, holds none
    status, raw = post(engine.admin + "/query", json.dumps(
        {"query": "SELECT id FROM sys_inbox WHERE service_name = 'Counter' AND service_key = 'held'"}).encode(),
        {"content-type": "application/json", "accept": "application/json"})
    assert (status, json.loads(raw)["rows"]) == (200, []), raw
    assert post(f"{engine.admin}/invocations/{inv}/kill", b"", method="PATCH")[0] == 200
    wait_until(lambda: call_json(engine, "/Counter/held/get") == (200, 1), 30, "the queued state, once the key is free")
