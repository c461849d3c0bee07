"""Completed plain invocations are forgotten once their retention passed; idempotent ones are kept
for their own (longer) retention."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Engine, Service, post
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka


@pytest.fixture
def short_retention(kafka_bootstrap: str, namespace: str, tmp_path: Path, service: Service) -> Iterator[Engine]:
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "engine", env={
        "REPRISE_COMPLETED_RETENTION_S": "2", "REPRISE_RETENTION_SWEEP_INTERVAL_S": "0.5"})
    eng.start()
    eng.register(service.uri)
    yield eng
    eng.kill()


def send(engine: Engine, path: str, headers: dict[str, str] | None = None) -> str:
    status, body = post(engine.ingress + path, b'"r"', {"content-type": "application/json", **(headers or {})})
    assert status == 202, body
    return json.loads(body)["invocationId"]


def described(engine: Engine, inv: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    status, body = post(engine.admin + f"/invocations/{inv}", None, method="GET")
    return status, json.loads(body) if body else {}


def test_plain_invocations_are_forgotten_after_their_retention(short_retention: Engine) -> None:
    plain = send(short_retention, "/Steps/three/send")
    kept = send(short_retention, "/Steps/three/send", {"idempotency-key": "keep-me"})
    wait_until(lambda: described(short_retention, plain)[1].get("status") == "COMPLETED", 30, "the send to complete")
    wait_until(lambda: described(short_retention, plain)[0] == 404, 30, "the completed invocation to be forgotten")
    status, row = described(short_retention, kept)
    assert (status, row.get("status")) == (200, "COMPLETED"), "an idempotent one keeps its own retention"
