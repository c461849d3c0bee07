"""decode → apply → commit: log messages into a partition's store, the one way every path does it.

The processor applies each consumed batch with ``apply_messages`` and then acts on the result; a
replay (``LogReplay``: a rebuild, a digest's catch-up, the holes of a changelog restore) applies the
same batches the same way without acting. Both therefore decode, apply, commit the batch with its
last offset and timestamp, retry a transient failure (partitions/core/apply_failures.py) and record
the changelog delta identically, which is what makes a rebuilt store equal the processor's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple, TypeVar, cast

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from reprise.engine.config import Config
from reprise.engine.consumed import ConsumedRecord
from reprise.engine.faults import crash_point, journal_committed
from reprise.engine.kafka import log_partitions, new_consumer, next_batch, watermarks
from reprise.partitions.core.apply import BatchResult, LogRecord, apply_batch
from reprise.partitions.core.apply_failures import TransientApplyError, is_transient
from reprise.partitions.core.transaction import KeyValueStore, Transaction, applied_offset
from reprise.partitions.state.changelog import ChangelogWriter
from reprise.schemas import codec

T = TypeVar("T")


class AppliedBatch(NamedTuple):
    """What one batch did: apply()'s result, the records it decoded, and the messages that did not
    decode (with why; the processor dead-letters them)."""

    result: BatchResult
    records: list[LogRecord]
    undecodable: list[tuple[ConsumedRecord, str]]


def apply_messages(store: KeyValueStore, partition: int, partition_count: int, msgs: list[ConsumedRecord],
                   changelog: ChangelogWriter | None = None, fault_point: str | None = None,
                   on_retry: Callable[[TransientApplyError, int], None] | None = None,
                   sleep: Callable[[float], None] = time.sleep) -> AppliedBatch:
    """Apply ``msgs`` (one partition's, in offset order, at least one) to ``store`` in one atomic
    commit that also stores the last offset; record the delta in ``changelog`` if given. A transient
    failure leaves nothing committed and the whole batch is applied again (``retry_transient``)."""
    records, undecodable = decode(msgs)
    last = msgs[-1]
    base = applied_offset(store)  # where this batch starts from: the changelog delta's base

    def once() -> tuple[BatchResult, dict[bytes, bytes | None]]:
        tx = Transaction(store)
        result = apply_batch(tx, partition, partition_count, records)
        try:
            return result, tx.commit(last.offset(), last.timestamp()[1])
        except Exception as e:
            if is_transient(e):  # a failed WriteBatch wrote nothing (the store's caches follow the write)
                raise TransientApplyError(last.offset(), e) from e
            raise

    result, writes = retry_transient(once, on_retry=on_retry, sleep=sleep)
    journal_committed(writes)  # tests only (reprise.testing's crash after n entries): else one comparison
    if fault_point is not None:
        crash_point(fault_point)
    if changelog is not None:
        changelog.record(partition, base, last.offset(), writes, last.timestamp()[1])
    return AppliedBatch(result, records, undecodable)


def decode(msgs: list[ConsumedRecord]) -> tuple[list[LogRecord], list[tuple[ConsumedRecord, str]]]:
    """Log records, and the messages that do not decode (with why)."""
    records, bad = [], []
    for m in msgs:
        try:
            kind, version = codec.kind_of(m.headers())
            records.append(LogRecord(kind, version, codec.decode(kind, version, m.value() or b""), m.offset(),
                                     m.timestamp()[1]))
        except codec.SchemaError as e:
            bad.append((m, str(e)))
    return records, bad



def retry_transient(fn: Callable[[], T], attempts: int = 5, first_delay_s: float = 0.1,
                    sleep: Callable[[float], None] = time.sleep,
                    on_retry: Callable[[TransientApplyError, int], None] | None = None) -> T:
    """Run ``fn`` (apply one batch) again after a TransientApplyError, with doubling delays; after
    ``attempts`` failures the last error propagates (the processor then ends, see engine/critical.py)."""
    delay = first_delay_s
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except TransientApplyError as e:
            if attempt == attempts:
                raise
            if on_retry is not None:
                on_retry(e, attempt)
            sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")


class LogTruncated(RuntimeError):
    """The log no longer holds the records a partition's state needs, and no snapshot covers the gap."""


def log_watermarks(cfg: Config, partition: int) -> tuple[int, int]:
    """The first offset the log still holds for the partition (above 0 once retention deleted some),
    and its end."""
    consumer = new_consumer(cfg)
    try:
        return watermarks(consumer, cfg.log_topic, partition)
    finally:
        consumer.close()


class LogReplay:
    """Applies a partition's log records to its store through apply(), from the store's applied
    offset on, without acting: a rebuild, a digest's catch-up, the holes of a changelog restore."""

    def __init__(self, cfg: Config, partition: int, store: KeyValueStore, changelog: ChangelogWriter | None = None,
                 batch: int = 5000) -> None:
        self.cfg, self.partition, self.store = cfg, partition, store
        self.changelog, self.batch = changelog, batch
        self.applied = 0
        self._count = log_partitions(cfg)
        self._consumer = new_consumer(cfg, **{"fetch.wait.max.ms": 100})
        self._assigned_at: int | None = None

    def __enter__(self) -> LogReplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self._consumer.close()
        if self.changelog is not None:
            self.changelog.flush()
            self.changelog.producer.flush(60)

    def up_to(self, last: int | None) -> int:
        """Apply records up to offset ``last`` inclusive (None: the topic's current end); returns how
        many were applied. Stops early if the topic ends first."""
        start, end = watermarks(self._consumer, self.cfg.log_topic, self.partition)
        if last is not None:
            end = min(end, last + 1)
        position = applied_offset(self.store) + 1
        if position >= end:
            return 0
        if start > position:  # the consumer would silently begin at the log's new start
            raise LogTruncated(f"partition {self.partition}: the log starts at offset {start}, the store needs "
                               f"offset {position} on: rebuild from a snapshot (--from-snapshot)")
        if self._assigned_at != position:  # else the consumer is already there, fetched ahead
            self._consumer.assign([TopicPartition(self.cfg.log_topic, self.partition, position or OFFSET_BEGINNING)])
        before = self.applied
        while position < end:
            fetched = cast(list[ConsumedRecord], next_batch(self._consumer, min(self.batch, end - position), 1.0))
            if fetched:
                self._assigned_at = fetched[-1].offset() + 1  # where the consumer stands now
            msgs = [m for m in fetched if m.error() is None and m.offset() < end]
            if not msgs:
                continue
            apply_messages(self.store, self.partition, self._count, msgs, self.changelog,
                           fault_point="restore.replay")
            position = msgs[-1].offset() + 1
            self.applied += len(msgs)
        return self.applied - before
