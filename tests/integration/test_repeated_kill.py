"""The engine SIGKILLed again and again, each time while a step is running at the service.

The service (tests/services/latch_app.py ``Paced/steps``) writes a ``start`` and a ``done`` line per
execution of a step, with a token naming the execution and the wall-clock time; the step's result is
its token. The test kills only once it sees an execution started and not done, and afterwards proves
each kill landed mid-step (the execution began before the kill and had not ended by then) rather than
trusting its timing. Exactly once: the journal keeps one execution per step, each ran once, and no
interrupted execution is the one kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import Engine, Service, call_json

pytestmark = pytest.mark.kafka
KILLS = 3
STEPS = 8


@dataclass
class Execution:
    step: int
    token: str
    started: float
    done: float | None = None


def executions(effects: Path, name: str) -> dict[str, Execution]:
    """Every execution of every step so far, by token."""
    out: dict[str, Execution] = {}
    f = effects / f"{name}.steps"
    for line in (f.read_text().splitlines() if f.exists() else []):
        what, step, token, at = line.split()
        if what == "start":
            out[token] = Execution(int(step), token, float(at))
        elif token in out:
            out[token].done = float(at)
    return out


def wait_running(effects: Path, name: str, since: float, timeout: float = 90.0) -> Execution:
    """Until an execution that started after ``since`` is seen not ended; that execution."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [e for e in executions(effects, name).values() if e.done is None and e.started > since]
        if running:
            return running[0]
        time.sleep(0.02)
    raise AssertionError("no step seen running at the service")


def test_engine_killed_repeatedly_mid_step_runs_each_journaled_step_once(
        kafka_bootstrap: str, namespace: str, tmp_path: Path, latch_service: Service, effects: Path) -> None:
    engine = Engine(kafka_bootstrap, namespace, tmp_path / "engine")
    engine.start()
    try:
        engine.register(latch_service.uri)
        status, accepted = call_json(engine, "/Paced/steps/send", {"name": "rk", "n": STEPS, "ms": 1500})
        assert status == 202, accepted
        kills: list[tuple[str, float]] = []  # (the execution seen running, when the engine was dead)
        since = 0.0
        for _ in range(KILLS):
            running = wait_running(effects, "rk", since)
            engine.kill()
            kills.append((running.token, time.time()))
            engine.start(120)
            since = time.time()

        status, tokens = call_json(engine, f"/restate/invocation/{accepted['invocationId']}/attach", timeout=120)
        assert status == 200, tokens
        runs = executions(effects, "rk")
        mid_step = [token for token, dead_at in kills
                    if runs[token].started < dead_at and (runs[token].done is None or runs[token].done > dead_at)]
        assert len(mid_step) == KILLS, f"kills that landed mid-step: {len(mid_step)} of {KILLS}"
        assert len(tokens) == STEPS and [runs[t].step for t in tokens] == list(range(STEPS))
        assert all(runs[t].done is not None for t in tokens)  # each journaled execution ran to its end
        assert not set(mid_step) & set(tokens), "an execution interrupted by a kill was journaled"
        assert len(runs) - STEPS <= KILLS, f"{len(runs)} executions for {STEPS} steps and {KILLS} kills"
    finally:
        engine.kill()
