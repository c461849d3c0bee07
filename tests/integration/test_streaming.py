"""Streaming attempts (BIDI_STREAM over h2c): a handler's steps run in one attempt, each journaled
before its result reaches the handler; a handler waiting for something slow is made to suspend."""

from __future__ import annotations

import re
from pathlib import Path

from tests.harness import Engine, call_json, count, post


def metric(engine: Engine, name: str) -> float:
    """A counter's value on the engine's /metrics (0 when it has no sample yet)."""
    status, body = post(engine.admin + "/metrics", None, method="GET")
    assert status == 200
    m = re.search(rf"^{re.escape(name)} (\S+)$", body.decode(), re.M)
    return float(m.group(1)) if m else 0.0


def test_steps_run_in_one_attempt_with_results_streamed_back(engine: Engine, effects: Path) -> None:
    assert engine.admin_json("/deployments")["deployments"][0]["protocol_type"] == "BidiStream"
    status, out = call_json(engine, "/Steps/three", "st")
    assert (status, out) == (200, "st:ABC")
    assert [count(effects, f"st.{s}") for s in "abc"] == [1, 1, 1]
    assert metric(engine, 'reprise_attempts_total{outcome="ended"}') == 1
    assert metric(engine, 'reprise_attempts_total{outcome="suspended"}') == 0, "no step needed a replay"
    assert metric(engine, "reprise_streamed_notifications_total") >= 3


def test_a_handler_that_waits_long_suspends_and_resumes(engine: Engine, effects: Path) -> None:
    """A 2.5 s sleep is longer than the stream's idle limit (1 s): the stream ends, the handler
    suspends, and the timer resumes it in a new attempt, each step still run once."""
    status, out = call_json(engine, "/Steps/sleepy", {"name": "zz", "ms": 2500})
    assert (status, out) == (200, "slept")
    assert [count(effects, f"zz.{s}") for s in ("before", "after")] == [1, 1]
    assert metric(engine, 'reprise_attempts_total{outcome="suspended"}') >= 1
    assert metric(engine, 'reprise_attempts_total{outcome="ended"}') == 1


def test_a_handler_that_never_waits_runs_request_response_after_eight_calm_attempts(engine: Engine) -> None:
    """Counter.add reads its state from the start message and never waits for the runtime: after
    eight streamed attempts that ended without waiting it runs request/response (same results);
    Steps.three, which waits for every step, still streams."""
    for i in range(1, 13):
        assert call_json(engine, "/Counter/calm/add", 1) == (200, i)
    assert metric(engine, 'reprise_attempt_modes_total{mode="streaming"}') == 8
    assert metric(engine, 'reprise_attempt_modes_total{mode="request_response"}') == 4
    assert call_json(engine, "/Steps/three", "again") == (200, "again:ABC")
    assert metric(engine, 'reprise_attempt_modes_total{mode="streaming"}') == 9
    assert metric(engine, 'reprise_attempts_total{outcome="suspended"}') == 0
