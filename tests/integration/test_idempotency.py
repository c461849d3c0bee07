"""The idempotency-key header: one execution per (service, key, handler, idempotency key)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import Engine, count, request

pytestmark = pytest.mark.kafka


@pytest.fixture
def engine(module_engine: Engine) -> Engine:
    """One engine for the module: each test uses keys, idempotency keys and effect names of its own."""
    return module_engine


@pytest.fixture
def effects(module_effects: Path) -> Path:
    return module_effects


def idem(key: str) -> dict[str, str]:
    return {"content-type": "application/json", "idempotency-key": key}


def test_duplicate_call_returns_the_stored_result_with_the_same_id(engine: Engine, effects: Path) -> None:
    s1, h1, b1 = request(engine.ingress + "/Steps/three", b'"i1"', idem("k-1"))
    s2, h2, b2 = request(engine.ingress + "/Steps/three", b'"i1"', idem("k-1"))
    assert (s1, json.loads(b1)) == (200, "i1:ABC") and (s2, b2) == (s1, b1)
    assert h1["x-restate-id"] == h2["x-restate-id"]
    assert h1["idempotency-expires"].endswith("Z")
    assert [count(effects, f"i1.{s}") for s in "abc"] == [1, 1, 1]
    s3, h3, _ = request(engine.ingress + "/Steps/three", b'"i1"', idem("k-2"))
    assert s3 == 200 and h3["x-restate-id"] != h1["x-restate-id"]
    assert count(effects, "i1.a") == 2


def test_idempotent_send_then_attach_and_output(engine: Engine, effects: Path) -> None:
    s, _, b = request(engine.ingress + "/Steps/three/send", b'"i2"', idem("k-3"))
    first = json.loads(b)
    assert s == 202 and first["status"] == "Accepted"
    s, _, b = request(engine.ingress + "/Steps/three/send", b'"i2"', idem("k-3"))
    again = json.loads(b)
    assert s == 202 and again == {**first, "status": "PreviouslyAccepted"}
    s, _, b = request(engine.ingress + "/restate/invocation/Steps/three/k-3/attach", method="GET")
    assert (s, json.loads(b)) == (200, "i2:ABC")
    s, _, b = request(engine.ingress + "/restate/invocation/Steps/three/k-3/output", method="GET")
    assert (s, json.loads(b)) == (200, "i2:ABC")
    s, _, b = request(engine.ingress + f"/restate/invocation/{first['invocationId']}/output", method="GET")
    assert (s, json.loads(b)) == (200, "i2:ABC")
    assert count(effects, "i2.a") == 1


def test_keys_are_scoped_to_the_object_key(engine: Engine) -> None:
    s, h1, b = request(engine.ingress + "/Counter/a/add", b"1", idem("same"))
    s2, h2, b2 = request(engine.ingress + "/Counter/b/add", b"1", idem("same"))
    assert (s, b, s2, b2) == (200, b"1", 200, b"1") and h1["x-restate-id"] != h2["x-restate-id"]
    s, _, b = request(engine.ingress + "/Counter/a/add", b"1", idem("same"))
    assert (s, b) == (200, b"1")  # not added twice
    s, _, b = request(engine.ingress + "/restate/invocation/Counter/a/add/same/output", method="GET")
    assert (s, b) == (200, b"1")
    s, _, b = request(engine.ingress + "/restate/invocation/Counter/a/add/unknown-key/output", method="GET")
    assert s == 404
