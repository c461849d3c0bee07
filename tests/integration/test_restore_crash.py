"""Restore and rebuild are crash-safe at every point: a process SIGKILLed anywhere in a rebuild (from
the changelog with holes, from a snapshot) leaves a store that, once restarted, has the digest of a
clean rebuild from the log. Kills land at fault-injection points (engine/faults.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from confluent_kafka import Producer

from reprise.engine.config import Config
from reprise.engine.kafka import create_topics
from reprise.schemas import codec
from tests.harness import ROOT, Engine, Proc, Service, call_json
from tests.integration.test_changelog import read_all, workload
from tests.integration.test_rebuild import partitions_cli as cli

pytestmark = pytest.mark.kafka
PARTITIONS = 4

# (crash point, the how-many-th time it is reached, rebuild arguments)
KILLS = [
    ("restore.chunk", 1, ()), ("restore.chunk", 2, ()), ("restore.chunk", 5, ()),
    ("restore.replay", 1, ()), ("restore.replay", 2, ()), ("restore.replay", 4, ()), ("restore.replay", 7, ()),
    ("restore.unflushed", 1, ()), ("restore.unflushed", 3, ()),
    ("rebuild.removed", 2, ()),
    ("snapshot.unpacked", 1, ("--from-snapshot",)), ("store.replace", 2, ("--from-snapshot",)),
    ("restore.chunk", 1, ("--from-snapshot",)), ("restore.replay", 3, ("--from-snapshot",)),
]


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, **env})


def resume_digest(kafka: str, namespace: str, home: Path, env: dict[str, str], use_changelog: bool) -> str:
    """What a restart does with the store a crash left: bring it to the log's end from its applied
    offset (as a processor does: the changelog first, or the log alone). Then, its stores closed, the
    digest of each, as ``reprise partitions digest --no-catch-up`` prints it (one process for both)."""
    code = ("import sys; from pathlib import Path; from reprise.engine.config import Config; "
            "from reprise.partitions.state.rebuild import catch_up, digest; "
            "from reprise.partitions.state.store_files import local_partitions; "
            f"cfg = Config(bootstrap={kafka!r}, namespace={namespace!r}, home=Path({str(home)!r}), "
            f"partitions={PARTITIONS}); "
            f"[catch_up(cfg, p, use_changelog={use_changelog}) for p in range({PARTITIONS})]; "
            "[print(f'partition {p} digest {digest(cfg, p)}') for p in local_partitions(cfg)]")
    out = run(["-c", code], env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def copy_with_holes(kafka: str, namespace: str, copy: str) -> int:
    """``copy``: the namespace's log record for record, beside its changelog with every third delta
    left out (holes a restore replays from the log). Returns the holes."""
    cfg = Config(bootstrap=kafka, namespace=copy, partitions=PARTITIONS)
    create_topics(cfg)
    producer = Producer({"bootstrap.servers": kafka, "linger.ms": 5})
    holes = 0
    for p in range(PARTITIONS):
        for m in read_all(kafka, f"{namespace}.log", p):
            producer.produce(cfg.log_topic, value=m.value(), key=m.key(), partition=p, headers=m.headers(),
                             timestamp=m.timestamp()[1])
        for i, d in enumerate(read_all(kafka, f"{namespace}.changelog", p)):
            if i % 3 == 1:
                holes += 1
                continue
            producer.produce(cfg.changelog_topic, value=d.value(), key=d.key(), partition=p,
                             headers=codec.headers_for("StoreDelta"), timestamp=d.timestamp()[1])
    assert producer.flush(30) == 0
    return holes


def test_a_rebuild_killed_anywhere_restarts_to_the_digest_of_the_log(kafka_bootstrap: str, namespace: str,
                                                                     tmp_path: Path, service: Service) -> None:
    engine = Engine(kafka_bootstrap, namespace, tmp_path / "engine", env={"REPRISE_CHANGELOG_MAX_DELAY_MS": "0"})
    engine.start()  # a delta per batch: many deltas, so many holes below
    engine.register(service.uri)
    try:
        workload(engine)
        snapshots = engine.admin_json("/partitions/snapshot", method="POST")["snapshots"]  # mid-log
        assert len(snapshots) == PARTITIONS
        for i in range(6):  # and records after the snapshots
            assert call_json(engine, "/Steps/three", f"after{i}")[0] == 200
            assert call_json(engine, f"/Counter/c{i}/add", 1)[0] == 200
    finally:
        engine.kill()
    copy = f"{namespace}-copy"
    assert copy_with_holes(kafka_bootstrap, namespace, copy) >= 2 * PARTITIONS
    # The copy's offsets are the namespace's, so the namespace's snapshots are the copy's too
    env = {"REPRISE_PARTITIONS": str(PARTITIONS), "REPRISE_SNAPSHOT_DIR": str(tmp_path / "snapshots")}
    shutil.copytree(engine.home / "snapshots" / namespace, tmp_path / "snapshots")

    clean = tmp_path / "clean"
    cli(kafka_bootstrap, copy, clean, "rebuild", "--all", "--no-changelog")
    expected = cli(kafka_bootstrap, copy, clean, "digest", "--no-catch-up")
    assert expected.count(" digest ") == PARTITIONS

    def kill_and_resume(i: int, point: str, nth: int, extra: tuple[str, ...]) -> bool:
        """A rebuild killed at the point, resumed: its digest is the clean one. Whether the kill landed."""
        home = tmp_path / f"kill{i}"
        if point == "rebuild.removed":  # a store there to remove
            cli(kafka_bootstrap, copy, home, "rebuild", "--all")
        out = run(["-m", "reprise", "partitions", "rebuild", "--all", "--jobs", "1", *extra,
                   "--kafka", kafka_bootstrap, "--namespace", copy, "--home", str(home)],
                  {**env, "REPRISE_FAULT_CRASH_AT": f"{point}:{nth}"})
        assert out.returncode in (0, -signal.SIGKILL), out.stderr[-3000:]
        after = resume_digest(kafka_bootstrap, copy, home, env, use_changelog=i % 2 == 0)
        assert after == expected, (f"killed at {point}:{nth} {extra}, restarted "
                                   f"{'with' if i % 2 == 0 else 'without'} the changelog", out.stderr[-2000:])
        shutil.rmtree(home, ignore_errors=True)
        return out.returncode == -signal.SIGKILL

    # Each kill has a home of its own and only reads the topics: they run side by side (their time is
    # mostly round trips to the broker)
    with ThreadPoolExecutor(3) as pool:
        landed = list(pool.map(lambda k: kill_and_resume(k[0], *k[1]), enumerate(KILLS)))
    killed = [k for k, hit in zip(KILLS, landed, strict=True) if hit]
    assert len(killed) >= len(KILLS) - 2, killed  # the points are reached: the kills did land mid-rebuild


def test_a_processor_killed_while_restoring_serves_the_state_of_the_log(kafka_bootstrap: str, namespace: str,
                                                                        tmp_path: Path, service: Service) -> None:
    """The engine's own start path: a new node restoring from the changelog, killed mid-restore,
    started again: its store is the log's (digest of a clean rebuild, claims included)."""
    engine = Engine(kafka_bootstrap, namespace, tmp_path / "engine", env={"REPRISE_CHANGELOG_MAX_DELAY_MS": "0"})
    engine.start()
    engine.register(service.uri)
    try:
        workload(engine)
        for i in range(4):
            assert call_json(engine, f"/Counter/k{i}/add", 10 + i) == (200, 10 + i)
    finally:
        engine.kill()
    copy = f"{namespace}-copy"
    copy_with_holes(kafka_bootstrap, namespace, copy)
    env = {"REPRISE_CHANGELOG_RESTORE_BEHIND": "1", "REPRISE_SNAPSHOT_INTERVAL_S": "0"}
    node = Engine(kafka_bootstrap, copy, tmp_path / "node", env={**env, "REPRISE_FAULT_CRASH_AT": "restore.replay:2"})
    Proc.start(node)  # not Engine.start: it dies before it serves
    assert node.popen is not None and node.popen.wait(120) == -signal.SIGKILL, node.output()[-3000:]
    node = Engine(kafka_bootstrap, copy, tmp_path / "node", env=env)
    node.start()
    assert node.stop() == 0, node.output()[-3000:]
    after = cli(kafka_bootstrap, copy, node.home, "digest")
    clean = tmp_path / "clean"
    cli(kafka_bootstrap, copy, clean, "rebuild", "--all", "--no-changelog")
    assert cli(kafka_bootstrap, copy, clean, "digest", "--no-catch-up") == after
