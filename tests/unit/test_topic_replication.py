"""Topic replication settings: ``min.insync.replicas`` per replication factor, and the RF=1 warning."""

from __future__ import annotations

import pytest

from reprise.engine.config import Config
from reprise.engine.kafka import single_replica_warning, topic_specs


@pytest.mark.parametrize(("rf", "min_isr"), [(1, "1"), (2, "2"), (3, "2"), (5, "2")])
def test_every_topic_needs_two_insync_replicas_wherever_there_are_two(rf: int, min_isr: str) -> None:
    specs = topic_specs(Config(namespace="ns", replication_factor=rf))
    assert {t.topic.split(".", 1)[1] for t in specs} >= {"log", "changelog", "replies", "deployments"}
    for t in specs:
        assert t.replication_factor == rf, t.topic
        assert t.config["min.insync.replicas"] == min_isr, t.topic


@pytest.mark.parametrize("role", ["processor", "ingress", "topics"])
def test_a_single_replica_log_is_warned_about_outside_dev(role: str) -> None:
    warning = single_replica_warning(1, role)
    assert warning is not None and "replication factor 1" in warning and "REPRISE_REPLICATION_FACTOR" in warning


@pytest.mark.parametrize(("replicas", "role"), [(1, "dev"), (2, "processor"), (3, "ingress"), (3, "topics")])
def test_no_warning_for_dev_or_a_replicated_log(replicas: int, role: str) -> None:
    assert single_replica_warning(replicas, role) is None
