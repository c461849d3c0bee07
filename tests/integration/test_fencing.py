"""Fencing: two processors that both believe they own the partitions; the stale one changes nothing."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.harness import Background, Engine, Service, call_json, count, post
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka


def test_a_zombie_processor_changes_nothing(kafka_bootstrap: str, namespace: str, tmp_path: Path,
                                            service: Service, effects: Path) -> None:
    old = Engine(kafka_bootstrap, namespace, tmp_path / "old")
    old.start()
    new = Engine(kafka_bootstrap, namespace, tmp_path / "new")
    try:
        old.register(service.uri)
        Background(call_json, old, "/Counter/f/slow_add/send", 1)
        wait_until(lambda: count(effects, "f.slow_add.started") == 1, 30, "the old processor's attempt")
        os.killpg(old.popen.pid, signal.SIGSTOP)  # frozen mid-attempt: it still believes it leads
        new.start()  # claims every partition with a higher epoch and re-runs the attempt
        wait_until(lambda: count(effects, "f.slow_add.started") == 2, 30, "the new processor's attempt")
        wait_until(lambda: json.loads(post(f"{new.admin}/services/Counter/state/f", None, method="GET")[1])
                   ["state"] == {"value": "1"}, 30, "the new processor's result")
        os.killpg(old.popen.pid, signal.SIGCONT)  # the zombie wakes up and reports its stale attempt
        time.sleep(4.0)
        assert "stepping down" in old.output(), old.output()[-3000:]
        state = json.loads(post(f"{new.admin}/services/Counter/state/f", None, method="GET")[1])["state"]
        assert state == {"value": "1"}, "the zombie's effects were applied"
        assert call_json(new, "/Counter/f/add", 10) == (200, 11)
    finally:
        for eng in (old, new):
            if eng.popen and eng.popen.poll() is None:
                os.killpg(eng.popen.pid, signal.SIGCONT)
            eng.kill()
