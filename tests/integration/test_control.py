"""Cancel, kill, purge, pause and resume over the admin API, and the retry policy's max attempts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from reprise.engine.ids import InvocationId
from tests.harness import Background, Engine, call_json, count, post
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka


@pytest.fixture
def engine(module_engine: Engine) -> Engine:
    """One engine for the module: each test uses keys and effect names of its own."""
    return module_engine


@pytest.fixture
def effects(module_effects: Path) -> Path:
    return module_effects


def admin(engine: Engine, inv: str, command: str) -> tuple[int, dict]:
    status, body = post(f"{engine.admin}/invocations/{inv}/{command}", b"", method="PATCH")
    return status, json.loads(body or b"null")


def send(engine: Engine, path: str, value: object) -> str:
    status, out = call_json(engine, path + "/send", value)
    assert status == 202, out
    return out["invocationId"]


def test_cancel_of_a_suspended_call_chain_cancels_the_child(engine: Engine, effects: Path) -> None:
    inv = send(engine, "/Waiter/chain", "c1")
    wait_until(lambda: count(effects, "c1.leaf") == 1, 30, "the leaf to start")
    time.sleep(0.3)
    assert admin(engine, inv, "cancel")[0] == 202
    wait_until(lambda: count(effects, "c1.leaf.cancelled") == 1, 30, "the child to see the cancellation")
    assert (effects / "c1.leaf.cancelled").read_text().strip() == "409"
    status, out = call_json(engine, f"/restate/invocation/{inv}/attach")
    assert status == 409
    status, out = admin(engine, inv, "cancel")
    assert status == 409 and "already completed" in out["message"]


def test_kill_frees_the_key_for_the_next_exclusive_call(engine: Engine, effects: Path) -> None:
    inv = send(engine, "/Counter/kk/block", "kb")
    wait_until(lambda: count(effects, "kb.blocking") == 1, 30, "the blocking handler")
    queued = Background(call_json, engine, "/Counter/kk/add", 5)
    time.sleep(0.5)
    assert admin(engine, inv, "kill")[0] == 200  # Restate's answer: the status, no body
    assert queued.result() == (200, 5)
    status, out = call_json(engine, f"/restate/invocation/{inv}/output")
    assert status == 409 and out["message"] == "killed"


def test_always_failing_handler_pauses_then_resume_gives_another_attempt(engine: Engine, effects: Path) -> None:
    inv = send(engine, "/Waiter/always_fails", "af")
    wait_until(lambda: count(effects, "af.attempt") == 3, 30, "three attempts")
    time.sleep(1.0)
    assert count(effects, "af.attempt") == 3, "max attempts is 3: then it pauses"
    assert admin(engine, inv, "pause")[0] == 200  # Restate's answer when already paused
    assert admin(engine, inv, "resume")[0] == 200
    wait_until(lambda: count(effects, "af.attempt") == 4, 30, "the resumed attempt")
    time.sleep(0.5)
    assert count(effects, "af.attempt") == 4
    assert admin(engine, inv, "kill")[0] == 200


def test_purge_and_unknown_ids(engine: Engine) -> None:
    status, out = call_json(engine, "/Steps/three/send", "pg")
    inv = out["invocationId"]
    wait_until(lambda: call_json(engine, f"/restate/invocation/{inv}/output")[0] == 200, 30, "completion")
    assert admin(engine, inv, "purge")[0] == 200
    assert call_json(engine, f"/restate/invocation/{inv}/output")[0] == 404
    unknown = str(InvocationId.new("nobody"))
    for command in ("cancel", "kill", "purge", "purge-journal", "pause", "resume", "restart-as-new"):
        status, out = admin(engine, unknown, command)
        assert (status, out) == (404, {"message": f"The requested invocation '{unknown}' does not exist",
                                       "restate_code": None})  # Restate's words
    status, out = admin(engine, "not-an-id", "cancel")
    assert status == 400


def test_pause_answers_as_restate(engine: Engine) -> None:
    """202 pausing a running invocation, 200 when already paused, 409 once it is not running."""
    inv = send(engine, "/Counter/pz/hold", 120_000)
    assert admin(engine, inv, "pause")[0] == 202
    assert admin(engine, inv, "pause")[0] == 200
    assert admin(engine, inv, "kill")[0] == 200
    status, out = admin(engine, inv, "pause")
    assert status == 409 and out["restate_code"] is None
