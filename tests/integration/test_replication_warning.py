"""A log with one replica is warned about at start, outside ``reprise dev``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT, Engine

pytestmark = pytest.mark.kafka
WARNING = "the log topic has replication factor 1"


def test_topics_create_and_an_ingress_warn_about_a_single_replica_log_and_dev_does_not(
        kafka_bootstrap: str, namespace: str, tmp_path: Path) -> None:
    created = subprocess.run([sys.executable, "-m", "reprise", "topics", "create", "--kafka", kafka_bootstrap,
                              "--namespace", namespace], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    assert WARNING in created.stderr

    ingress = Engine(kafka_bootstrap, namespace, tmp_path / "ingress", role="ingress")
    dev = Engine(kafka_bootstrap, namespace + "d", tmp_path / "dev")
    try:
        ingress.start()
        dev.start()
        assert WARNING in ingress.output()
        assert WARNING not in dev.output()
    finally:
        ingress.kill()
        dev.kill()
