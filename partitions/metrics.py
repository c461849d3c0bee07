"""Prometheus metrics of the partition processor (served by the admin API at /metrics).

Reference of every metric: docs/metrics.md. Per record and per invocation only counters move here;
what costs more (a store's size, its pending timers) is sampled every few seconds by
``partitions/leader/partition_gauges.py``.
"""

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

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

REBALANCES = Counter("reprise_rebalances_total", "Consumer-group rebalance callbacks, by event (assign, revoke: "
                     "a lost assignment counts as a revoke)", ["event"])
REBALANCE_PARTITIONS = Counter("reprise_rebalance_partitions_total",
                               "Partitions assigned to or taken from this processor by rebalances", ["event"])
PARTITIONS_OWNED = Gauge("reprise_partitions_owned", "Partitions whose store this process holds (led or catching up)")
RESTORE_SECONDS = Histogram("reprise_restore_seconds", "Restoring a partition's store from the changelog on takeover",
                            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900))
STORE_LIVE_DATA_BYTES = Gauge("reprise_store_live_data_bytes", "RocksDB's estimate of a partition store's live "
                              "data (rocksdb.estimate-live-data-size; flushed data only)", ["partition"])
STORE_SST_BYTES = Gauge("reprise_store_sst_bytes", "Size of a partition store's SST files on disk "
                        "(rocksdb.total-sst-files-size)", ["partition"])
STORE_MEMTABLE_BYTES = Gauge("reprise_store_memtable_bytes", "Memory of a partition store's memtables "
                             "(rocksdb.cur-size-all-mem-tables)", ["partition"])
STORE_KEYS = Gauge("reprise_store_keys", "RocksDB's estimate of the rows a partition store holds "
                   "(rocksdb.estimate-num-keys)", ["partition"])
TIMERS_PENDING = Gauge("reprise_timers_pending", "Durable timers a partition holds (sleeps, delayed calls, "
                       "retention clean-ups), counted up to 100,000", ["partition"])
OUTBOX_BACKLOG = Gauge("reprise_outbox_backlog", "Outbox entries of a partition (calls to other partitions, replies) "
                       "not yet acknowledged as shipped", ["partition"])
CHANGELOG_LAG = Gauge("reprise_changelog_lag_records", "Log records a partition's store has applied whose writes "
                      "are not yet produced to the changelog", ["partition"])

_PARTITION_GAUGES = (CONSUMER_LAG, INBOX_DEPTH, SNAPSHOT_AGE, SNAPSHOT_OFFSET, STORE_LIVE_DATA_BYTES, STORE_SST_BYTES,
                     STORE_MEMTABLE_BYTES, STORE_KEYS, TIMERS_PENDING, OUTBOX_BACKLOG, CHANGELOG_LAG)
_STORE_GAUGES = {"live_data_bytes": STORE_LIVE_DATA_BYTES, "sst_bytes": STORE_SST_BYTES,
                 "memtable_bytes": STORE_MEMTABLE_BYTES, "keys": STORE_KEYS}


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


def rebalanced(event: str, partitions: int) -> None:
    REBALANCES.labels(event).inc()
    REBALANCE_PARTITIONS.labels(event).inc(partitions)


def observe_store(partition: int, sizes: dict[str, int], timers: int, outbox_backlog: int,
                  changelog_lag: int | None) -> None:
    """One sample of a partition's store (partitions/leader/partition_gauges.py)."""
    p = str(partition)
    for name, value in sizes.items():
        _STORE_GAUGES[name].labels(p).set(value)
    TIMERS_PENDING.labels(p).set(timers)
    OUTBOX_BACKLOG.labels(p).set(outbox_backlog)
    if changelog_lag is not None:
        CHANGELOG_LAG.labels(p).set(changelog_lag)


class InvocationsCompleted(Collector):
    """``reprise_invocations_completed_total`` by service, handler and outcome: a dict count per
    completion on the apply thread (a labelled prometheus Counter takes a lock and a lookup each).

    The service and handler come from the log, so they are labels only if registered (else empty):
    an Invoke for a name nobody registered must not create a series."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}
        self._registered: Callable[[str, str], bool] = lambda _service, _handler: False

    def label_registered(self, registered: Callable[[str, str], bool]) -> None:
        """Label with the service and handler when ``registered(service, handler)``."""
        self._registered = registered

    def count(self, completed: Iterable[tuple[int, str, str, str]]) -> None:
        counts = self._counts
        for _offset, service, handler, outcome in completed:
            key = (service, handler, outcome)
            n = counts.get(key)
            if n is None:  # first of its kind, or unregistered (looked up each time, never kept)
                if not self._registered(service, handler):
                    key = ("", "", outcome)
                n = counts.get(key, 0)
            counts[key] = n + 1

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("reprise_invocations_completed", "Invocations this processor completed as "
                                     "their partition's leader, by registered service, handler and outcome "
                                     "(succeeded, failed, cancelled, killed)",
                                     labels=["service", "handler", "outcome"])
        for (service, handler, outcome), n in list(self._counts.items()):
            family.add_metric([service, handler, outcome], n)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily("reprise_invocations_completed", "", labels=["service", "handler", "outcome"])


INVOCATIONS_COMPLETED = InvocationsCompleted()
REGISTRY.register(INVOCATIONS_COMPLETED)


def label_services_of(registry: Any) -> None:
    """Completions are labelled with service and handler when ``registry`` (engine/registry.py) has them."""
    def registered(service: str, handler: str) -> bool:
        info = registry.service(service)
        return info is not None and handler in info.handlers
    INVOCATIONS_COMPLETED.label_registered(registered)


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
