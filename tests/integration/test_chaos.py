"""The chaos run (tests/chaos/run.py) at a small size, and its checker proven able to fail.

The small run starts a broker of its own on free ports (and kills it once): the session's broker is
never killed, and topics other tests delete cannot disturb it. The checker's test runs on the session's
broker without chaos: acknowledged sends that were never produced and effects written twice must show.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.run import parse_args, run_chaos
from tests.harness import free_port_pair

pytestmark = pytest.mark.kafka


def _args(namespace: str, work: Path, *extra: str) -> list[str]:
    return ["--processors", "2", "--ingresses", "2", "--partitions", "4", "--accounts", "10", "--clients", "8",
            "--namespace", namespace, "--work", str(work), *extra]


@pytest.mark.timeout(600)
def test_chaos_small_every_acknowledgement_verified_by_id(namespace: str, tmp_path: Path) -> None:
    failures, figures = run_chaos(parse_args(_args(
        namespace, tmp_path / "chaos", "--broker-port", str(free_port_pair()), "--invocations", "1000",
        "--pace", "0.25", "--chaos-every", "3", "--broker-every", "25")))
    print(figures)
    assert failures == []
    assert sum(figures["kills"].values()) >= 3, figures  # processes did die under the load


def test_the_chaos_check_finds_lost_acknowledgements_and_duplicate_effects(kafka_bootstrap: str, namespace: str,
                                                                          tmp_path: Path) -> None:
    failures, _ = run_chaos(parse_args(_args(namespace, tmp_path / "chaos", "--kafka", kafka_bootstrap,
                                             "--invocations", "80", "--chaos-every", "0",
                                             "--sabotage-lose-acknowledged", "3",
                                             "--sabotage-duplicate-effects", "2")))
    lost = [f for f in failures if f.endswith("unknown to the engine: lost")]
    twice = [f for f in failures if "is in the ledger 2 times" in f]
    assert len(lost) == 3, failures
    assert len(twice) == 2, failures
