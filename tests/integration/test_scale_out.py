"""Scale-out: processors in a consumer group share the partitions, take over from a dead one, and a
newcomer starts from a snapshot; a separate ingress process gets every result."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.harness import Engine, Service, call_json
from tests.integration.test_crash_recovery import wait_until
from tests.integration.test_metrics import scrape, total

pytestmark = pytest.mark.kafka
PARTITIONS = 4
KEYS = [f"k{i}" for i in range(12)]


def owned(proc: Engine) -> dict[int, bool]:
    """The partitions a processor owns now, and whether it leads them yet."""
    return {row["partition"]: row["leading"] for row in proc.admin_json("/partitions")["partitions"]}


def settled(*procs: Engine) -> bool:
    """Every partition is owned and led by exactly one of ``procs``."""
    seen: list[int] = []
    for p in procs:
        rows = owned(p)
        if not all(rows.values()):
            return False
        seen += rows
    return sorted(seen) == list(range(PARTITIONS))


def add_everywhere(ingress: Engine, expected: dict[str, int], delta: int) -> None:
    for key in KEYS:
        status, value = call_json(ingress, f"/Counter/{key}/add", delta, timeout=90)
        expected[key] += delta
        assert (status, value) == (200, expected[key]), (key, status, value)


def test_processors_share_take_over_and_restore_from_snapshots(kafka_bootstrap: str, namespace: str,
                                                              tmp_path: Path, service: Service) -> None:
    env = {"REPRISE_SNAPSHOT_DIR": str(tmp_path / "snapshots"), "REPRISE_SNAPSHOT_INTERVAL_S": "0"}

    def node(name: str, role: str = "processor") -> Engine:
        return Engine(kafka_bootstrap, namespace, tmp_path / name, PARTITIONS, env, role=role)

    ingress, a, b, c = node("ingress", "ingress"), node("a"), node("b"), node("c")
    procs = [ingress, a, b, c]
    try:
        ingress.start()
        a.start()
        ingress.register(service.uri)
        wait_until(lambda: settled(a), 60, "the first processor to lead every partition")
        expected = dict.fromkeys(KEYS, 0)
        add_everywhere(ingress, expected, 1)

        b.start()  # joins the group: some partitions move to it
        wait_until(lambda: settled(a, b) and owned(a) and owned(b), 60, "the partitions to be shared")
        add_everywhere(ingress, expected, 10)

        taken = b.admin_json("/partitions/snapshot", method="POST")["snapshots"]
        assert {s["partition"] for s in taken} == set(owned(b)), taken
        snapshotted = set(owned(b))
        moved = scrape(a)  # the first processor was given every partition, then gave b its share
        assert total(moved, "reprise_rebalance_partitions_total", event="assign") >= PARTITIONS
        assert total(moved, "reprise_rebalance_partitions_total", event="revoke") >= len(snapshotted)
        assert total(moved, "reprise_rebalances_total", event="revoke") >= 1

        a.kill()  # a crash: its partitions move once the group notices (session timeout)
        wait_until(lambda: settled(b), 60, "the survivor to take every partition")
        add_everywhere(ingress, expected, 100)

        c.start()  # a fresh machine: no local state at all
        time.sleep(1)
        b.stop()  # a clean leave: the group moves b's partitions to c at once
        wait_until(lambda: settled(c), 60, "the newcomer to take every partition")
        add_everywhere(ingress, expected, 1000)
        restored = {p for p in snapshotted if f"partition {p}: restored snapshot" in c.output()}
        assert restored == snapshotted, c.output()[-3000:]
        for key in KEYS:  # exactly once through every move: 1 + 10 + 100 + 1000
            assert call_json(ingress, f"/Counter/{key}/get") == (200, 1111)
    finally:
        for p in procs:
            p.kill()
