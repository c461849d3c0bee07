"""Deployment lifecycle: v2 of a service takes new invocations while one suspended on v1 stays pinned to
v1 (across a restart of the engine); a deployment with invocations still on it is removed only with
force. Checked over the admin API and ``reprise deployments ls|describe|rm``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import ROOT, Engine, Service, call_json, post

pytestmark = pytest.mark.kafka
JSON = {"content-type": "application/json"}


def _versioned(effects: Path, log: Path, version: str, port: int | None = None) -> Service:
    svc = Service(effects, log, http1=True, app="examples.upgrade.app:app", port=port,
                  env={"VERSION": version})  # uvicorn: every sleep suspends the invocation
    svc.start()
    return svc


def _register(engine: Engine, uri: str, **extra: object) -> tuple[int, dict]:
    status, body = post(engine.admin + "/deployments", json.dumps({"uri": uri, "use_http_11": True, **extra}).encode(),
                        JSON)
    return status, json.loads(body)


def _reprise(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reprise", "deployments", *args, "--admin-port",
                           str(engine.admin_port)], cwd=ROOT, capture_output=True, text=True, timeout=60)


def _status(engine: Engine, inv: str) -> str | None:
    status, body = post(f"{engine.admin}/invocations/{inv}", None, method="GET")
    return json.loads(body)["status"] if status == 200 else None


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_an_upgrade_keeps_a_suspended_invocation_on_its_deployment(kafka_bootstrap: str, namespace: str,
                                                                   tmp_path: Path, effects: Path) -> None:
    v1 = _versioned(effects, tmp_path / "v1.log", "v1")
    v2 = _versioned(effects, tmp_path / "v2.log", "v2")
    engine = Engine(kafka_bootstrap, namespace, tmp_path / "engine", partitions=2)
    try:
        engine.start()
        status, first = _register(engine, v1.uri)
        assert status == 201, first
        status, body = post(engine.ingress + "/Versioned/nap/send", b"20000", JSON)  # outlasts the checks below
        assert status == 202, body
        pinned = json.loads(body)["invocationId"]
        _wait(lambda: _status(engine, pinned) == "SUSPENDED", 60, "the invocation to suspend on v1")

        status, second = _register(engine, v2.uri)  # v2 of the same service: no force needed
        assert status == 201 and second["services"][0]["revision"] == 2, second
        assert engine.admin_json("/services/Versioned")["deployment_id"] == second["id"]
        assert engine.admin_json(f"/deployments/{first['id']}")["active_invocations"] == 1
        described = _reprise(engine, "describe", first["id"])
        assert described.returncode == 0 and "running invocations: 1" in described.stdout, described
        assert f"latest is revision 2 on {second['id']}" in described.stdout, described.stdout
        refused = _reprise(engine, "rm", first["id"])
        assert refused.returncode == 1 and "still has 1 invocation" in refused.stderr, refused

        engine.kill()  # the pin is in the partition's store: it survives a restart
        engine.start()
        assert call_json(engine, "/Versioned/nap", 0) == (200, "started on v2, finished on v2")
        status, out = post(f"{engine.ingress}/restate/invocation/{pinned}/attach", None, method="GET", timeout=90)
        assert (status, json.loads(out)) == (200, "started on v1, finished on v1")

        _wait(lambda: engine.admin_json(f"/deployments/{first['id']}")["active_invocations"] == 0, 30, "v1 drained")
        listed = json.loads(_reprise(engine, "ls", "--output", "json").stdout)["deployments"]
        assert {d["id"] for d in listed} == {first["id"], second["id"]}
        removed = _reprise(engine, "rm", first["id"])
        assert removed.returncode == 0, removed
        assert [d["id"] for d in engine.admin_json("/deployments")["deployments"]] == [second["id"]]
    finally:
        engine.kill()
        v1.kill()
        v2.kill()
