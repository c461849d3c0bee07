"""Fencing: a processor frozen mid-attempt wakes up after a new leader claimed its partitions and
reports its attempt *before* the new leader's attempt of the same invocation ends. Both attempts
carry the same attempt number, so only the leader epoch tells them apart: the zombie's effects
reach the log first and must be ignored."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.harness import Engine, Service, call_json, count, log_kinds, post
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka


def _state(eng: Engine, key: str) -> dict:
    return json.loads(post(f"{eng.admin}/services/Latched/state/{key}", None, method="GET")[1])["state"]


def test_a_zombies_effects_that_reach_the_log_first_are_ignored(
        kafka_bootstrap: str, namespace: str, tmp_path: Path, latch_service: Service, effects: Path) -> None:
    hold = tmp_path / "hold-apply"  # the zombie, once woken, acts before it reads the newcomer's claim
    old = Engine(kafka_bootstrap, namespace, tmp_path / "old", env={"REPRISE_FAULT_HOLD_APPLY": str(hold)})
    new = Engine(kafka_bootstrap, namespace, tmp_path / "new")
    old.start()
    try:
        old.register(latch_service.uri)
        status, accepted = call_json(old, "/Latched/z/take/send")
        assert status == 202, accepted
        inv = accepted["invocationId"]
        wait_until(lambda: count(effects, "z.started") == 1, 30, "the old leader's execution to start")
        os.killpg(old.popen.pid, signal.SIGSTOP)  # frozen mid-attempt: it still believes it leads
        (effects / "z.go1").touch()  # its execution ends; the answer waits in the frozen process's socket
        wait_until(lambda: count(effects, "z.finished") == 1, 30, "the old leader's execution to end")

        new.start()  # claims every partition with a higher epoch and resumes the attempt (same number)
        wait_until(lambda: count(effects, "z.started") == 2, 60, "the new leader's execution to start")
        assert count(effects, "z.finished") == 1  # held on its latch: the new leader's attempt is in flight

        hold.touch()
        os.killpg(old.popen.pid, signal.SIGCONT)  # the zombie wakes and reports its attempt
        wait_until(lambda: "InvokerEffects" in log_kinds(kafka_bootstrap, namespace), 60,
                   "the zombie's effects to reach the log")
        assert count(effects, "z.finished") == 1, "the new leader's attempt must still be in flight"
        hold.unlink()  # and now it reads the log: the newcomer's claim

        # The zombie sees the newcomer's claim name its own as the one it took over
        # (partitions/leader/claims.py) and yields without claiming back, so the newcomer never steps
        # down: its execution in flight is the one that counts once it ends.
        wait_until(lambda: "yielding to it" in old.output(), 60, "the zombie to yield")
        assert "stepping down" not in new.output()
        for n in range(2, 10):  # more latches than executions: a regression fails on the asserts, not a hang
            (effects / f"z.go{n}").touch()
        status, out = call_json(new, f"/restate/invocation/{inv}/attach", timeout=60)
        assert (status, out) == (200, "execution2"), f"not the newcomer's execution in flight: {out}"
        assert _state(new, "z") == {"by": '"execution2"'}
        assert count(effects, "z.started") == 2, "the newcomer's attempt was stopped and run again"
        assert log_kinds(kafka_bootstrap, namespace).count("InvokerEffects") >= 2  # both reached the log
        wait_until(lambda: "stepping down" in old.output(), 30, "the zombie to step down")
    finally:
        for eng in (old, new):
            if eng.popen and eng.popen.poll() is None:
                os.killpg(eng.popen.pid, signal.SIGCONT)
            eng.kill()
