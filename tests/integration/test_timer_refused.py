"""A timer whose TimerFired record Kafka refuses still fires: the leader arms it again instead of
leaving it until a new leader loads the partition's timers (partitions/leader/processor.py,
TimerService.refire). The refusal is injected (REPRISE_FAULT_FAIL_AT=timer-fired:1, engine/faults.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import Engine, Service, call_json

pytestmark = pytest.mark.kafka


def test_a_refused_timer_fire_is_fired_again(kafka_bootstrap: str, namespace: str, tmp_path: Path,
                                              service: Service) -> None:
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "engine", env={"REPRISE_FAULT_FAIL_AT": "timer-fired:1"})
    eng.start()
    try:
        eng.register(service.uri)
        status, _ = call_json(eng, "/Steps/sleepy", {"name": "refused", "ms": 500}, 60)
        assert status == 200
        assert "timer" in eng.output() and "not fired" in eng.output()  # the injected refusal happened
    finally:
        eng.kill()
