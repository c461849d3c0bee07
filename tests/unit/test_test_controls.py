"""The test controls behind ``reprise.testing``: timers moved ahead, and never reachable in a cluster role."""

from __future__ import annotations

import asyncio
import time

import pytest

from reprise.deploy import runtime, test_controls
from reprise.engine.config import Config
from reprise.partitions.core.memory_store import MemoryStore
from reprise.partitions.core.tables import Tables
from reprise.partitions.core.transaction import Transaction
from reprise.partitions.leader.timers import TimerService


def _store_with_timers(*fire_at: int) -> MemoryStore:
    store = MemoryStore()
    tx = Transaction(store)
    tables = Tables(tx)
    for i, at in enumerate(fire_at):
        tables.timers.put(Tables.timer_key(at, f"inv{i}/sleep/1"),
                          {"kind": "sleep", "invocation_id": f"inv{i}", "fire_at_ms": at, "completion_id": 1})
    tx.commit(0)
    return store


def test_advancing_fires_what_comes_due_within_it_and_nothing_after() -> None:
    now = int(time.time() * 1000)
    hour, day = 3_600_000, 86_400_000
    store = _store_with_timers(now + 20_000, now + hour - 60_000, now + day)  # in 20 s, 59 min, a day
    fired: list[str] = []

    async def run() -> None:
        timers = TimerService(lambda p, k: fired.append(k), window_s=30.0, reload_every_s=60.0)
        timers.start_partition(0, store)
        await asyncio.sleep(0.2)
        assert fired == [] and timers.pending() == 1  # the first is loaded (within the window), none is due
        timers.advance(hour)
        await asyncio.sleep(0.3)
        assert len(fired) == 2  # both within the hour: the loaded one, and the 59-minute one loaded now
        timers.schedule(0, Tables.timer_key(now + hour + 100, "late"), now + hour + 100)  # 100 ms on the new clock
        await asyncio.sleep(0.5)
        timers.close()

    asyncio.run(run())
    assert [k.split("/", 2)[2].split("/")[0] for k in fired] == ["inv0", "inv1", "late"]


def test_the_controls_are_refused_outside_reprise_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    assert test_controls.refusal("processor") is None
    monkeypatch.setenv(test_controls.ENV, "45123")
    assert test_controls.refusal("dev") is None
    for role in ("processor", "ingress"):
        assert "never in a cluster" in (test_controls.refusal(role) or "")
    monkeypatch.setenv(test_controls.ENV, "0.0.0.0:80")
    assert "expected a port number" in (test_controls.refusal("dev") or "")


def test_a_cluster_role_with_the_controls_requested_does_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(test_controls.ENV, "45123")
    cfg = Config.from_env(bootstrap="127.0.0.1:1", namespace="never-started")
    with pytest.raises(SystemExit) as ended:
        asyncio.run(runtime.run(cfg, "processor"))  # before anything opens: no broker is needed
    assert ended.value.code == 2


def test_the_pytest_plugin_is_inert_until_a_fixture_is_used() -> None:
    """Installed, its pytest11 entry point loads it into every pytest run of the environment: loading it
    must start nothing and import no Kafka client, engine or HTTP client."""
    import subprocess
    import sys

    probe = ("import sys, reprise.testing.plugin; "
             "print(sorted(m for m in ('confluent_kafka', 'httpx', 'reprise.testing.engine', 'reprise.deploy') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
