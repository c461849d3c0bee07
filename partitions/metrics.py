"""Prometheus metrics of the partition processor (served by the admin API at /metrics)."""

import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

RECORDS_APPLIED = Counter("reprise_records_applied_total", "Log records applied", ["partition"])
RECORDS_REJECTED = Counter("reprise_records_rejected_total",
                           "Log records that did not decode, failed their kind's checks or could not be applied, "
                           "by kind and reason (partitions/core/errors.py Rejection)", ["partition", "kind", "reason"])
APPLY_SECONDS = Histogram("reprise_apply_batch_seconds", "Time to apply and commit one batch",
                          buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
ATTEMPT_SECONDS = Histogram("reprise_attempt_seconds", "One attempt: request to the deployment until its last frame",
                            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60))
STREAMED_NOTIFICATIONS = Counter("reprise_streamed_notifications_total",
                                 "Notifications sent to running handlers on their open stream (no replay needed)")
ATTEMPTS = Counter("reprise_attempts_total", "Attempts by how they ended", ["outcome"])
WATCHDOG_REDRIVES = Counter("reprise_watchdog_redrives_total",
                            "INVOKED attempts with no live attempt past the watchdog's bound, failed so they run again")
ATTEMPT_MODES = Counter("reprise_attempt_modes_total",
                        "Attempts to deployments that can stream, by the mode they ran in (stream_policy.py)",
                        ["mode"])
REPLIES_REFUSED = Counter("reprise_replies_refused_total",
                          "Replies not written because their topic is not an allowed reply topic")
CONSUMER_LAG = Gauge("reprise_consumer_lag_records", "Records on the log not yet applied", ["partition"])
LEADING = Gauge("reprise_partitions_led", "Partitions this process leads")
INVOCATIONS = Gauge("reprise_invocations", "Invocations a partition holds, by status", ["partition", "status"])
INBOX_DEPTH = Gauge("reprise_inbox_depth", "Invocations queued behind a virtual object's lock", ["partition"])
SNAPSHOT_AGE = Gauge("reprise_snapshot_age_seconds", "Age of the newest snapshot of an owned partition",
                     ["partition"])
SNAPSHOT_OFFSET = Gauge("reprise_snapshot_applied_offset", "Applied offset of the newest snapshot", ["partition"])

_PARTITION_GAUGES = (CONSUMER_LAG, INBOX_DEPTH, SNAPSHOT_AGE, SNAPSHOT_OFFSET)


_APPLIED_BY_PARTITION: dict[int, Any] = {}


def records_applied(partition: int, n: int) -> None:
    """Count a batch's records; the labelled child is kept (``labels()`` takes a lock and a lookup,
    ~2% of the apply thread under load). Counters are never removed, so a kept child stays valid."""
    child = _APPLIED_BY_PARTITION.get(partition)
    if child is None:
        child = _APPLIED_BY_PARTITION[partition] = RECORDS_APPLIED.labels(str(partition))
    child.inc(n)


def observe_tables(partition: int, counts: dict[str, int], inbox_depth: int) -> None:
    p = str(partition)
    for status, n in counts.items():
        INVOCATIONS.labels(p, status).set(n)
    INBOX_DEPTH.labels(p).set(inbox_depth)


def observe_snapshot(partition: int, snapshot: Any) -> None:
    """Record the newest snapshot of a partition (None: there is none); its age then grows by itself."""
    if snapshot is None:
        return
    created_s = snapshot.created_ms / 1000
    SNAPSHOT_AGE.labels(str(partition)).set_function(lambda: time.time() - created_s)
    SNAPSHOT_OFFSET.labels(str(partition)).set(snapshot.applied_offset)


def forget_partition(partition: int) -> None:
    """A partition that moved to another processor is that processor's to report."""
    p = str(partition)
    for gauge in _PARTITION_GAUGES:
        try:
            gauge.remove(p)
        except KeyError:
            pass
    for labels in [s for s in _label_sets(INVOCATIONS) if s[0] == p]:
        INVOCATIONS.remove(*labels)


def _label_sets(gauge: Gauge) -> list[Sequence[str]]:
    return list(gauge._metrics)  # noqa: SLF001 - prometheus_client has no public listing of children
