"""Embedded handlers: a restate-sdk app inside the engine's process, and a blocking handler that
stalls neither the apply loop nor other invocations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import Background, Engine, Service, call_json, post
from tests.integration.test_crash_recovery import wait_until
from tests.integration.test_streaming import metric

pytestmark = pytest.mark.kafka


def test_embedded_app_runs_in_process_and_a_blocking_handler_stalls_nothing(
        kafka_bootstrap: str, namespace: str, tmp_path: Path, service: Service, effects: Path) -> None:
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "engine", env={
        "REPRISE_EMBEDDED_APP": "tests.services.embedded_app:app", "REPRISE_TEST_EFFECTS": str(effects)})
    eng.start()
    try:
        eng.register(service.uri)  # a remote deployment beside the embedded one
        deployments = json.loads(post(eng.admin + "/deployments", None, method="GET")[1])["deployments"]
        assert "embedded://tests.services.embedded_app:app" in [d["uri"] for d in deployments]
        status, greeting = call_json(eng, "/Embedded/greet", "ada")
        assert status == 200 and greeting == f"hello ada from {eng.popen.pid}"  # the engine's own process
        assert metric(eng, "reprise_streamed_notifications_total") >= 1, "the run's result streamed in-process"

        blocked = Background(call_json, eng, "/Blocking/hold", "b1")
        wait_until(lambda: (effects / "b1.started").exists(), 30, "the blocking handler to start")
        # While it blocks its thread: records are applied, attempts run, the ingress answers.
        assert call_json(eng, "/Steps/three", "during") == (200, "during:ABC")
        assert call_json(eng, "/Counter/e/add", 5) == (200, 5)
        assert not blocked.done(), "the blocking handler finished early: the test proves nothing"
        (effects / "b1.release").write_text("x")
        assert blocked.result(60) == (200, "b1 released")
    finally:
        eng.kill()
