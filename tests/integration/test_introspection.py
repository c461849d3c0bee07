"""Introspection: the admin API's invocation list, journal, state and timers, the CLI over it, the page."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT, Engine, call_json, count, post
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka


def get(engine: Engine, path: str) -> tuple[int, dict]:
    status, body = post(engine.admin + path, None, method="GET")
    return status, json.loads(body)


def cli(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reprise", *args, "--admin-port", str(engine.admin_port)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_list_describe_state_and_timers(engine: Engine, effects: Path) -> None:
    assert call_json(engine, "/Counter/intro/add", 7) == (200, 7)
    status, out = call_json(engine, "/Steps/sleepy/send", {"name": "intro", "ms": 60_000})
    inv = out["invocationId"]
    wait_until(lambda: count(effects, "intro.before") == 1, 30, "the first step")
    wait_until(lambda: get(engine, f"/invocations/{inv}")[1].get("status") == "SUSPENDED", 30, "the durable sleep")
    status, listed = get(engine, "/invocations?status=SUSPENDED")
    assert status == 200 and [i["id"] for i in listed["invocations"]] == [inv]
    status, described = get(engine, f"/invocations/{inv}")
    types = [e["type"] for e in described["journal"]]
    assert described["status"] == "SUSPENDED" and described["target"] == "Steps/sleepy"
    assert types[:3] == ["INPUT_COMMAND", "RUN_COMMAND", "RUN_COMPLETION"] and "SLEEP_COMMAND" in types
    assert get(engine, "/services/Counter/state/intro") == (200, {"service": "Counter", "key": "intro",
                                                                  "state": {"value": "7"}})
    status, timers = get(engine, "/timers")
    assert [t["invocation_id"] for t in timers["timers"]] == [inv] and timers["timers"][0]["kind"] == "sleep"
    assert get(engine, "/invocations/inv_nope")[0] == 400
    assert get(engine, "/invocations?status=WHATEVER")[0] == 400


def test_cli(engine: Engine, effects: Path) -> None:
    out = cli(engine, "services")
    assert out.returncode == 0 and "Counter" in out.stdout and "get (shared)" in out.stdout
    assert call_json(engine, "/Counter/cli/add", 3) == (200, 3)
    out = cli(engine, "state", "get", "Counter", "cli", "-o", "json")
    assert out.returncode == 0 and json.loads(out.stdout)["state"] == {"value": "3"}
    status, sent = call_json(engine, "/Waiter/awake/send", "cli1")
    wait_until(lambda: get(engine, f"/invocations/{sent['invocationId']}")[1].get("status") == "SUSPENDED", 30,
               "the handler to suspend on its awakeable")
    out = cli(engine, "invocations", "ls", "--status", "SUSPENDED")
    assert out.returncode == 0 and sent["invocationId"] in out.stdout
    out = cli(engine, "invocations", "describe", sent["invocationId"], "-o", "json")
    assert out.returncode == 0 and json.loads(out.stdout)["status"] == "SUSPENDED"
    out = cli(engine, "invocations", "kill", sent["invocationId"])
    assert out.returncode == 0
    out = cli(engine, "invocations", "kill", sent["invocationId"])
    assert out.returncode == 1 and "409" in out.stderr and "already completed" in out.stderr


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_web_page_lists_invocations_and_shows_a_journal(engine: Engine, tmp_path: Path) -> None:
    status, sent = call_json(engine, "/Steps/three/send", "web")
    inv = sent["invocationId"]
    wait_until(lambda: get(engine, f"/invocations/{inv}")[1].get("status") == "COMPLETED", 30, "completion")
    out = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                          "--no-first-run", "--disable-background-networking", "--disable-component-update",
                          "--disable-sync", f"--user-data-dir={tmp_path / 'chrome'}", "--virtual-time-budget=5000",
                          "--dump-dom", f"{engine.admin}/ui?show={inv}"], capture_output=True, text=True, timeout=90)
    dom = out.stdout
    assert f'data-id="{inv}"' in dom, out.stderr[-2000:]
    assert "Steps/three" in dom and "COMPLETED" in dom
    assert f"Journal of <code>{inv}</code>" in dom and "RUN_COMPLETION" in dom and "OUTPUT_COMMAND" in dom
