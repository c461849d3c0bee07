"""The gauges of each owned partition that cost more than a counter to keep, sampled on a thread of
their own every few seconds (``REPRISE_METRICS_SAMPLE_INTERVAL_S``), never per record: RocksDB's size
estimates, the durable timers pending (a key-only count, capped), the outbox backlog and how far the
changelog trails the store.
"""

from __future__ import annotations

import logging
import threading

from reprise.partitions import metrics
from reprise.partitions.core.tables import TablesView
from reprise.partitions.core.transaction import Transaction
from reprise.partitions.state.changelog import ChangelogWriter
from reprise.partitions.state.rocks_store import RocksStore

log = logging.getLogger(__name__)

TIMERS_COUNTED_UP_TO = 100_000  # a count past it costs more than a sample is worth
_TIMERS_PER_LOCK = 1_000  # keys counted per hold of the store lock (the event loop takes it too)
_TIMERS = b"tm/"  # partitions/core/tables.py: durable timers, by due time


class PartitionGauges:
    """Samples ``stores`` (the processor's, by partition) under ``store_lock``, the lock a partition's
    store is closed under: a gauge is never set for a partition after it was forgotten."""

    def __init__(self, stores: dict[int, RocksStore], store_lock: threading.Lock,
                 changelog: ChangelogWriter | None, interval_s: float, stop: threading.Event) -> None:
        self.stores, self.store_lock, self.changelog = stores, store_lock, changelog
        self.interval_s, self.stop = interval_s, stop

    def start(self) -> None:
        """Sample until ``stop`` is set (an interval of 0: never). A daemon thread: a failed sample
        loses a metric, never the process."""
        if self.interval_s > 0:
            threading.Thread(target=self._run, name="partition-gauges", daemon=True).start()

    def _run(self) -> None:
        while not self.stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        for partition, store in list(self.stores.items()):
            try:
                timers = self._count_timers(partition, store)
                with self.store_lock:
                    if timers is None or self.stores.get(partition) is not store:  # gone: forgotten, not sampled
                        continue
                    metrics.observe_store(partition, store.size_estimates(), timers,
                                          TablesView(Transaction(store)).outbox.backlog(),
                                          self.changelog.lag(partition) if self.changelog is not None else None)
            except Exception:  # noqa: BLE001 - a metric must never take a partition down
                log.warning("partition %d: sampling its store for metrics failed", partition, exc_info=True)

    def _count_timers(self, partition: int, store: RocksStore) -> int | None:
        """The partition's durable timers, up to the cap, a thousand keys per hold of the lock
        (None: the store went away meanwhile)."""
        counted, start = 0, None
        while counted < TIMERS_COUNTED_UP_TO:
            with self.store_lock:
                if self.stores.get(partition) is not store:
                    return None
                n, start = store.count(_TIMERS, min(_TIMERS_PER_LOCK, TIMERS_COUNTED_UP_TO - counted), start)
            counted += n
            if start is None:
                break
        return counted
