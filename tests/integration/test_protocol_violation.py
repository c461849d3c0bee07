"""A command from a service that the engine cannot apply (its payload does not decode) is a protocol
violation of that attempt: retried with backoff (code 571), as Restate retries what it cannot decode;
once the deployment is fixed the invocation completes (docs/limits.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Engine, Service, post

pytestmark = pytest.mark.kafka


@pytest.fixture
def raw_service(tmp_path: Path, effects: Path) -> Iterator[Service]:
    svc = Service(effects, tmp_path / "raw.log", app="tests.services.raw_protocol_app:app")
    svc.start()
    yield svc
    svc.kill()


def _attempts(effects: Path) -> int:
    path = effects / "attempts"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _wait(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_malformed_command_is_retried_until_a_fixed_deployment_completes_it(
        kafka_bootstrap: str, namespace: str, tmp_path: Path, effects: Path, raw_service: Service) -> None:
    engine = Engine(kafka_bootstrap, namespace, tmp_path / "engine")
    engine.start()
    try:
        engine.register(raw_service.uri)
        status, body = post(engine.ingress + "/Raw/k1/put/send", b'"x"', {"content-type": "application/json"})
        assert status == 202, body
        inv = json.loads(body)["invocationId"]
        _wait("a third attempt", lambda: _attempts(effects) >= 3)
        described = engine.admin_json(f"/invocations/{inv}")
        assert described["status"] in ("BACKING_OFF", "INVOKED"), described  # not failed for good
        assert described["last_failure"]["code"] == 571, described
        assert "protocol violation" in described["last_failure"]["message"]
        assert described["journal_length"] == 1  # the input: the refused command was not journaled

        (effects / "fixed").write_text("x")
        done = _wait("completion", lambda: (d := engine.admin_json(f"/invocations/{inv}"))["status"] == "COMPLETED"
                     and d)
        assert done["output"] == '"done"', done
        assert engine.admin_json("/services/Raw/state/k1")["state"] == {"k": '"v"'}
    finally:
        engine.kill()
