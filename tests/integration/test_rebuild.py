"""Invariant 1 (docs/architecture.md): a partition's store is a function of its log. Rebuilt from the topic,
the digest is the same."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import ROOT, Background, Engine, call_json, count
from tests.integration.test_crash_recovery import wait_until
from tests.integration.test_journal_retention import command, completed, journal_entries, patch_service, send

pytestmark = pytest.mark.kafka


def partitions_cli(kafka: str, namespace: str, home: Path, *args: str) -> str:
    """``reprise partitions <args>`` on a namespace's stores under ``home``; its output (it must succeed)."""
    out = subprocess.run([sys.executable, "-m", "reprise", "partitions", *args, "--kafka", kafka,
                          "--namespace", namespace, "--home", str(home)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def reprise(engine: Engine, kafka: str, *args: str) -> str:
    return partitions_cli(kafka, engine.args[engine.args.index("--namespace") + 1], engine.home, *args)


def test_digest_after_rebuild_equals_digest_before(engine: Engine, effects: Path, kafka_bootstrap: str) -> None:
    # A mixed workload: steps, retries, state, calls across partitions, timers, a workflow with a
    # promise, idempotency, awakeables, a kill and a delayed send still pending at the end.
    for i in range(5):
        assert call_json(engine, "/Steps/three", f"r{i}")[0] == 200
        assert call_json(engine, f"/Counter/c{i}/add", i)[0] == 200
    assert call_json(engine, "/Errors/flaky", "rf")[0] == 200
    assert call_json(engine, "/Caller/relay", "rr")[0] == 200
    assert call_json(engine, "/CartObject/a/addTicket", "s1") == (200, True)
    snapshots = engine.admin_json("/partitions/snapshot", method="POST")["snapshots"]
    assert sorted(s["partition"] for s in snapshots) == [0, 1, 2, 3]
    assert call_json(engine, "/SignupWorkflow/w1/run/send", {"email": "w@x"})[0] == 202
    wait_until(lambda: count(effects, "emails") == 1, 30, "the signup email")
    secret = (effects / "emails").read_text().split("secret=")[1].strip()
    assert call_json(engine, "/SignupWorkflow/w1/click", secret)[0] == 200
    assert call_json(engine, "/Caller/idem", "ri")[0] == 200
    waiting = Background(call_json, engine, "/Waiter/awake", "ra")
    wait_until(lambda: count(effects, "ra.awakeable") == 1, 30, "the awakeable")
    assert call_json(engine, "/Counter/later/stamp/send?delay=1h", "never")[0] == 202
    assert call_json(engine, "/Napper/n/run", 200) == (200, "rested")
    # a journal dropped by its retention's timer, a restart-as-new and a purged journal (AdminCommands)
    patch_service(engine, "Steps", {"journal_retention": "1s"})
    dropped = send(engine, "/Steps/three", "rj")
    wait_until(lambda: completed(engine, dropped) and journal_entries(engine, dropped) == 0, 30, "the journal timer")
    first = send(engine, "/Counter/rs/add", 1)
    completed(engine, first)
    status, restarted = command(engine, first, "restart-as-new")
    assert status == 200 and command(engine, first, "purge-journal") == (200, None)
    completed(engine, restarted["new_invocation_id"])
    engine.kill()  # a crash, not a clean stop: the store is wherever it was
    waiting.result()
    time.sleep(0.5)

    before = reprise(engine, kafka_bootstrap, "digest")
    lines = before.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith(f"partition {i} digest ") for i, line in enumerate(lines))
    rebuilt = reprise(engine, kafka_bootstrap, "rebuild", "--all")
    assert rebuilt.count("rebuilt from") == 4 and "4 partitions, " in rebuilt  # in parallel, with a total
    after = reprise(engine, kafka_bootstrap, "digest", "--no-catch-up")
    assert after == before
    print(rebuilt)

    # From the snapshots taken mid-workload: only the records after them are replayed, same digest.
    from_snapshots = reprise(engine, kafka_bootstrap, "rebuild", "--all", "--from-snapshot")
    assert reprise(engine, kafka_bootstrap, "digest", "--no-catch-up") == before
    print(from_snapshots)
    assert replayed(from_snapshots) < replayed(rebuilt), (from_snapshots, rebuilt)


def replayed(rebuild_output: str) -> int:
    """Records replayed over all partitions, from the lines 'partition N rebuilt from M records ...'."""
    return sum(int(line.split(" rebuilt from ")[1].split()[0]) for line in rebuild_output.splitlines()
               if " rebuilt from " in line)  # not the total line of a parallel rebuild
