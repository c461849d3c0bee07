"""A service written with Restate's TypeScript SDK (@restatedev/restate-sdk), served by its own
``serve()``: Node's HTTP/2 server, h2c, BIDI_STREAM. A different HTTP/2 stack from hypercorn's
(nghttp2: Huffman-coded, dynamically indexed response headers) against the invoker's h2c client."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import ROOT, Background, Engine, Proc, call_json, count, free_port
from tests.integration.test_streaming import metric

pytestmark = pytest.mark.kafka
TS_DIR = ROOT / "tests" / "services" / "ts"


@pytest.fixture(scope="module")
def engine(module_engine: Engine) -> Engine:
    """One engine and one TypeScript service for both tests: their keys and effect names differ."""
    return module_engine


@pytest.fixture
def effects(module_effects: Path) -> Path:
    return module_effects


@pytest.fixture(scope="module")
def ts_service(engine: Engine, module_effects: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("needs node and npm")
    if not (TS_DIR / "node_modules" / "@restatedev" / "restate-sdk").exists():
        out = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=TS_DIR, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, f"npm ci failed in {TS_DIR}:\n{out.stderr[-2000:]}"
    port = free_port()
    proc = Proc(["node", str(TS_DIR / "service.mjs")], tmp_path_factory.mktemp("ts") / "ts-service.log",
                {"PORT": str(port), "REPRISE_TEST_EFFECTS": str(module_effects)})
    try:
        proc.start()
        proc.wait_listening(port)  # Node's h2c server answers no HTTP/1.1 health check
        uri = f"http://127.0.0.1:{port}"
        engine.register(uri)
        yield uri
    finally:
        proc.kill()


def test_a_typescript_sdk_service_runs_unmodified(engine: Engine, effects: Path, ts_service: str) -> None:
    deployments = engine.admin_json("/deployments")["deployments"]
    ts = next(d for d in deployments if d["uri"] == ts_service)
    assert ts["protocol_type"] == "BidiStream"
    assert {s["name"] for s in ts["services"]} == {"TsGreeter", "TsCounter"}

    status, out = call_json(engine, "/TsGreeter/steps", "ts1")
    assert status == 200 and (out["greeting"], out["total"], len(out["padding"])) == ("ts1:ABC", 3, 100_000)
    assert [count(effects, f"ts1.{s}") for s in "abc"] == [1, 1, 1]
    assert call_json(engine, "/TsCounter/ts1/add", 4) == (200, 7)  # the state the call left

    assert call_json(engine, "/TsGreeter/flaky", "tf") == (200, "recovered")
    assert count(effects, "tf.try") == 2  # failed once, retried once

    assert call_json(engine, "/TsGreeter/nap", {"name": "tn", "ms": 2500}) == (200, "rested")
    assert [count(effects, f"tn.{s}") for s in ("before", "after")] == [1, 1]
    assert metric(engine, 'reprise_attempts_total{outcome="suspended"}') >= 1

    status, body = call_json(engine, "/TsGreeter/refuse", None)
    assert status == 403 and "not allowed" in json.dumps(body)


def test_many_concurrent_calls_share_the_connection(engine: Engine, effects: Path, ts_service: str) -> None:
    calls = [Background(call_json, engine, f"/TsCounter/many{i % 5}/add", 1) for i in range(60)]
    results = [c.result(120) for c in calls]
    assert all(status == 200 for status, _ in results), results
    for key in range(5):  # one at a time per key: each add saw a different count
        assert sorted(v for i, (_, v) in enumerate(results) if i % 5 == key) == list(range(1, 13))
