"""The chaos run (tests/chaos/run.py) at a small size on the session's broker, which it never kills,
and its checker proven able to fail: acknowledged sends that were never produced, effects written twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.run import parse_args, run_chaos

pytestmark = pytest.mark.kafka


def _args(kafka: str, namespace: str, work: Path, *extra: str) -> list[str]:
    return ["--processors", "2", "--ingresses", "2", "--partitions", "4", "--accounts", "10", "--clients", "8",
            "--kafka", kafka, "--namespace", namespace, "--work", str(work), *extra]


@pytest.mark.timeout(600)
def test_chaos_small_every_acknowledgement_verified_by_id(kafka_bootstrap: str, namespace: str,
                                                          tmp_path: Path) -> None:
    failures, figures = run_chaos(parse_args(_args(kafka_bootstrap, namespace, tmp_path / "chaos",
                                                   "--invocations", "400", "--chaos-every", "2")))
    print(figures)
    assert failures == []
    assert sum(figures["kills"].values()) >= 2, figures  # processes did die under the load


def test_the_chaos_check_finds_lost_acknowledgements_and_duplicate_effects(kafka_bootstrap: str, namespace: str,
                                                                          tmp_path: Path) -> None:
    failures, _ = run_chaos(parse_args(_args(kafka_bootstrap, namespace, tmp_path / "chaos",
                                             "--invocations", "80", "--chaos-every", "0",
                                             "--sabotage-lose-acknowledged", "3",
                                             "--sabotage-duplicate-effects", "2")))
    lost = [f for f in failures if f.endswith("unknown to the engine: lost")]
    twice = [f for f in failures if "is in the ledger 2 times" in f]
    assert len(lost) == 3, failures
    assert len(twice) == 2, failures
