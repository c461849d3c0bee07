"""Restate's own clients against Reprise's ingress: the Python SDK's client and the TypeScript one."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from restate.client import create_client

from tests.harness import ROOT, Engine, count
from tests.integration.test_crash_recovery import wait_until
from tests.services import testapp

pytestmark = pytest.mark.kafka
TS_DIR = ROOT / "tests" / "clients" / "ts"


@pytest.fixture(scope="module")
def engine(module_engine: Engine) -> Engine:
    """One engine for both clients: each uses keys and effect names of its own."""
    return module_engine


@pytest.fixture
def effects(module_effects: Path) -> Path:
    return module_effects


def test_python_sdk_client_call_send_and_delay(engine: Engine, effects: Path) -> None:
    async def run() -> None:
        async with create_client(engine.ingress) as client:  # type: ignore[attr-defined]
            assert await client.service_call(testapp.three, "pyc") == "pyc:ABC"
            assert await client.object_call(testapp.add, key="pyc", arg=4) == 4
            handle = await client.service_send(testapp.three, "pys")
            assert handle.invocation_id.startswith("inv_1")
            await client.object_send(testapp.add, key="pyc", arg=1, send_delay=timedelta(milliseconds=300))
            assert await client.workflow_call(testapp.nap, key="pyw", arg=10) == "rested"

    asyncio.run(run())
    wait_until(lambda: count(effects, "pys.c") == 1, 30, "the send")
    wait_until(lambda: json.loads(_get(engine, "/services/Counter/state/pyc"))["state"] == {"value": "5"}, 30,
               "the delayed send")


def _get(engine: Engine, path: str) -> bytes:
    from tests.harness import post

    return post(engine.admin + path, None, method="GET")[1]


def _npm_ready() -> bool:
    if shutil.which("node") is None or shutil.which("npm") is None:
        return False
    if not (TS_DIR / "node_modules" / "@restatedev" / "restate-sdk-clients").exists():
        out = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=TS_DIR, capture_output=True,
                             text=True, timeout=300)
        if out.returncode != 0:
            pytest.fail(f"npm ci failed in {TS_DIR}:\n{out.stderr[-2000:]}")
    return True


def test_typescript_ingress_client(engine: Engine, effects: Path) -> None:
    if not _npm_ready():
        pytest.skip("needs node and npm")
    out = subprocess.run(["node", "client_test.mjs", engine.ingress, str(effects)], cwd=TS_DIR,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert results == {"call": "tsc:ABC", "objectCall": 3, "send": True, "attach": "tss:ABC",
                       "awakeable": "woken with from-ts"}
