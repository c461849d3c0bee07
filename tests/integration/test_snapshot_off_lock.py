"""A snapshot holds the partition's store only for its RocksDB checkpoint, not through the tar and
upload: while a slow upload is in progress, the engine keeps serving invocations (the event loop,
which takes the store lock for its retention sweeps, never waits for the upload)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.harness import Background, Engine, Service, call_json
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka


def test_invocations_complete_while_a_snapshot_upload_is_stuck(kafka_bootstrap: str, namespace: str,
                                                               tmp_path: Path, service: Service) -> None:
    release = tmp_path / "release-the-upload"
    held = release.with_name(release.name + ".held")
    engine = Engine(kafka_bootstrap, namespace, tmp_path / "engine", env={
        "REPRISE_FAULT_HOLD": f"snapshot.publish={release}",  # the upload waits until the test says
        "REPRISE_SNAPSHOT_INTERVAL_S": "0",
        # the event loop takes the store lock every 0.2 s (a retention sweep per led partition)
        "REPRISE_COMPLETED_RETENTION_S": "3600", "REPRISE_RETENTION_SWEEP_INTERVAL_S": "0.2"})
    engine.start()
    engine.register(service.uri)
    try:
        for i in range(4):
            assert call_json(engine, f"/Counter/s{i}/add", 1) == (200, 1)
        snapshot = Background(engine.admin_json, "/partitions/snapshot", "POST")  # every partition, in turn
        wait_until(held.exists, 60, "the snapshot to reach its upload")
        time.sleep(1.0)  # retention sweeps have come round meanwhile
        for i in range(4):  # on every partition, the one being snapshotted among them
            assert call_json(engine, f"/Counter/s{i}/add", 2, timeout=30) == (200, 3)
            assert call_json(engine, "/Steps/three", f"during{i}", timeout=30)[0] == 200
        assert not snapshot.done() and not release.exists()  # the upload was stuck all along
        release.touch()
        taken = snapshot.result(120)["snapshots"]
        assert sorted(s["partition"] for s in taken) == [0, 1, 2, 3], taken
    finally:
        release.touch()
        engine.kill()
