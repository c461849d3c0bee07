"""The changelog: every apply batch's store writes, on a topic of their own, to restore a store fast.

Why: the log is the truth, but replaying it runs apply() per record (~20k records/s in Python). The
writes a batch made are its result; writing them back into RocksDB needs no apply at all. Like
Kafka Streams' changelog topics, a processor produces, for its committed batches, ``StoreDelta``
records: the store's applied offset before them (``base``), after them (``last``), and their puts
and deletes (consecutive batches merged, see ``ChangelogWriter``). The changelog is a cache of
apply's output, never the truth:

* a delta is usable on a store whose applied offset is its ``base`` (apply is deterministic, so
  whoever wrote it and however batches were cut, the store it leads to is the one the log implies);
* a delta that was never written (a crash between the store write and the produce, a batch too
  large for one record) leaves a hole, which a restore fills by replaying the log's records in it;
* a delta may overlap what the store holds (a processor that re-applied records after a crash):
  its writes hold every key written in its range with the value at its end, so on a store at any
  offset from its ``base`` up to before its ``last`` they give the store at ``last``. One that ends
  at or before the store's offset is skipped.

Kafka key: ``base`` and ``last`` as two big-endian int64 (a restore skips deltas without decoding
them); timestamp: that of the batch's last log record (a restore seeks by time to its start).
"""

from __future__ import annotations

import logging
import struct
import sys
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from confluent_kafka import Consumer, Producer, TopicPartition

from reprise.engine.config import Config
from reprise.engine.consumed import ConsumedRecord
from reprise.engine.faults import crash_point
from reprise.engine.kafka import new_consumer, next_batch, record_timestamp, watermarks
from reprise.partitions.core.transaction import applied_offset
from reprise.partitions.state.rocks_store import RocksStore
from reprise.schemas import codec

log = logging.getLogger(__name__)

_KEY = struct.Struct(">qq")
_SWAP = sys.byteorder != "little"  # sizes are little-endian on the wire
# A restore writes RocksDB once it holds this many distinct rows (bounded memory, few large writes).
FLUSH_WRITES = 50_000
# How far before the first needed record's time a restore starts reading the changelog: record
# timestamps come from several producers' clocks, so they are only nearly in offset order.
SEEK_MARGIN_MS = 60_000


def encode_delta(partition: int, base: int, last: int, writes: dict[bytes, bytes | None]) -> bytes:
    """The Avro body of a StoreDelta holding ``writes`` (value None: a delete)."""
    sizes = array("i")
    parts = []
    for k, v in writes.items():
        parts.append(k)
        if v is None:
            sizes.extend((len(k), -1))
        else:
            sizes.extend((len(k), len(v)))
            parts.append(v)
    if _SWAP:
        sizes.byteswap()
    return codec.encode("StoreDelta", {"partition": partition, "base_offset": base, "last_offset": last,
                                       "sizes": sizes.tobytes(), "data": b"".join(parts)})


def delta_writes(delta: dict) -> Iterator[tuple[bytes, bytes | None]]:
    """The (key, value or None) writes of a decoded StoreDelta, in order."""
    return iter(merge_delta(delta, {}).items())


def merge_delta(delta: dict, into: dict[bytes, bytes | None]) -> dict[bytes, bytes | None]:
    """``into`` with a decoded StoreDelta's writes laid over it (value None: a delete).

    Checked whole before ``into`` is touched (a bad delta changes nothing), then one loop straight
    into the caller's dict: a restore runs it for every row of every delta."""
    sizes = array("i")
    sizes.frombytes(delta["sizes"])
    if _SWAP:
        sizes.byteswap()
    data = delta["data"]
    if len(sizes) % 2:
        raise codec.SchemaError(f"StoreDelta sizes hold {len(sizes)} lengths, not pairs")
    if sizes and (min(sizes[::2]) < 0 or min(sizes[1::2]) < -1):
        raise codec.SchemaError("StoreDelta sizes hold a negative length")
    if (expected := sum(sizes) + sizes.count(-1)) != len(data):  # a delete's -1 takes no bytes
        raise codec.SchemaError(f"StoreDelta data holds {len(data)} bytes, its sizes account for {expected}")
    pos = 0
    lengths = iter(sizes)
    for key_len, value_len in zip(lengths, lengths, strict=False):  # pairs: the count is even (above)
        key = data[pos:pos + key_len]
        pos += key_len
        if value_len < 0:
            into[key] = None
        else:
            into[key] = data[pos:pos + value_len]
            pos += value_len
    return into


def delta_key(base: int, last: int) -> bytes:
    return _KEY.pack(base, last)


def delta_range(key: bytes | None) -> tuple[int, int] | None:
    """(base, last) from a changelog record's key; None if it is not a delta's key."""
    return _KEY.unpack(key) if key is not None and len(key) == _KEY.size else None


class _Pending:
    """Consecutive batches' writes merged, not yet produced."""

    __slots__ = ("base", "last", "writes", "bytes", "timestamp_ms", "started")

    def __init__(self, base: int) -> None:
        self.base = self.last = base
        self.writes: dict[bytes, bytes | None] = {}
        self.bytes = self.timestamp_ms = 0
        self.started = time.monotonic()


class ChangelogWriter:
    """Produces the partitions' deltas; the processor's apply thread calls ``record`` after each
    committed batch and ``tick`` after each poll.

    Consecutive batches are merged into one delta (up to ``max_records`` log records, ``max_bytes``
    of values, or ``max_delay_s`` old): a delta of many batches is as valid as one per batch, writes
    a row changed by several of them once, and costs one produce. The changelog then trails the
    store by at most that much, which a restore replays from the log.
    """

    def __init__(self, cfg: Config, producer: Producer, max_records: int = 1000, max_delay_s: float = 0.2) -> None:
        self.topic = cfg.changelog_topic
        self.producer = producer
        self.record_limit = cfg.max_message_bytes
        self.max_records, self.max_delay_s = max_records, max_delay_s
        self.max_bytes = cfg.max_message_bytes // 4  # values; keys and sizes add little
        self.skipped = 0  # deltas too large for one record: holes a restore replays from the log
        self._pending: dict[int, _Pending] = {}

    def record(self, partition: int, base: int, last: int, writes: dict[bytes, bytes | None],
               timestamp_ms: int = 0) -> None:
        pending = self._pending.get(partition)
        if pending is not None and pending.last != base:  # not the next batch: the merge would lie
            self.flush(partition)
            pending = None
        if pending is None:
            pending = self._pending[partition] = _Pending(base)
        pending.writes.update(writes)
        pending.bytes += sum(map(len, filter(None, writes.values())))
        pending.last, pending.timestamp_ms = last, timestamp_ms
        if (last - pending.base >= self.max_records or pending.bytes >= self.max_bytes
                or time.monotonic() - pending.started >= self.max_delay_s):
            self.flush(partition)

    def lag(self, partition: int) -> int:
        """Log records the partition's store applied whose writes are not produced yet (a metric; may
        be read from another thread: a delta just produced reads as 0 or as its size)."""
        pending = self._pending.get(partition)
        return 0 if pending is None else pending.last - pending.base

    def tick(self) -> None:
        """Produce the deltas that have waited ``max_delay_s``."""
        now = time.monotonic()
        for partition in [p for p, d in self._pending.items() if now - d.started >= self.max_delay_s]:
            self.flush(partition)

    def flush(self, partition: int | None = None) -> None:
        """Produce the pending delta of ``partition`` (None: of every partition)."""
        for p in list(self._pending) if partition is None else [partition]:
            pending = self._pending.pop(p, None)
            if pending is not None and pending.writes:
                self._produce(p, pending)

    def _produce(self, partition: int, pending: _Pending) -> None:
        value = encode_delta(partition, pending.base, pending.last, pending.writes)
        if len(value) > self.record_limit:
            self.skipped += 1
            log.info("partition %d: the delta of offsets %d..%d is %d bytes, over the record limit: not written "
                     "(a restore replays those records from the log)", partition, pending.base + 1, pending.last,
                     len(value))
            return
        kwargs: dict[str, Any] = {"value": value, "key": delta_key(pending.base, pending.last), "partition": partition,
                  "headers": codec.headers_for("StoreDelta")}
        if pending.timestamp_ms > 0:
            kwargs["timestamp"] = pending.timestamp_ms
        while True:
            try:
                self.producer.produce(self.topic, **kwargs)
                return
            except BufferError:
                self.producer.poll(0.05)


@dataclass
class Restored:
    """What a restore did: deltas applied, the log records they stood for, records replayed in holes."""

    deltas: int = 0
    covered: int = 0
    replayed: int = 0
    seconds: float = 0.0


Replay = Callable[[int], int]  # replay the log up to this offset (inclusive); returns records applied


def restore(cfg: Config, partition: int, store: RocksStore, replay: Replay) -> Restored:
    """Bring ``store`` forward with the partition's changelog, replaying the log where it has holes.

    Stops at the changelog's end; the caller replays whatever the log holds beyond it.
    """
    started = time.perf_counter()
    done = Restored()
    pos = applied_offset(store)
    consumer = new_consumer(cfg, **{"fetch.wait.max.ms": 100, "max.partition.fetch.bytes": 16 * 1024 * 1024,
                                    "fetch.max.bytes": 64 * 1024 * 1024})
    try:
        span = watermarks(consumer, cfg.changelog_topic, partition)
        # A delta ends at a record the log held when it was written: one ending at or past the log's
        # end belongs to another log (the topic was recreated, or lost its tail) and is never used
        log_end = watermarks(consumer, cfg.log_topic, partition)[1]
        # The writes of consecutive deltas, merged: a row written by many batches is written once
        pending: dict[bytes, bytes | None] = {}
        for m in _records(cfg, consumer, partition, pos, span):
            bounds = delta_range(m.key())
            if bounds is None or bounds[1] <= pos or bounds[1] >= log_end:
                continue  # not a delta, nothing in it the store lacks, or another log's
            base, last = bounds
            if base > pos:  # a hole: the log's records in it, through apply()
                if pending:
                    _write(store, pending)
                    pending = {}
                done.replayed += replay(base)  # its first write flushes the restored rows (RocksStore.write)
                pos = applied_offset(store)
                if pos != base:
                    continue  # the log ended (or moved past) first: later deltas may still fit
            try:
                delta = _checked(codec.decode("StoreDelta", 1, m.value() or b""), partition, base, last)
                merge_delta(delta, pending)
            except codec.SchemaError as e:  # a cache entry gone bad is a hole, not a failed restore
                log.warning("partition %d: changelog offset %d unreadable (%s): skipped", partition, m.offset(), e)
                continue
            done.deltas += 1
            done.covered += last - max(base, pos)
            pos = last
            if len(pending) >= FLUSH_WRITES:
                _write(store, pending)
                pending = {}
        if pending:
            _write(store, pending)
        crash_point("restore.unflushed")
        store.flush()
    finally:
        consumer.close()
        done.seconds = time.perf_counter() - started
    return done


def _write(store: RocksStore, writes: dict[bytes, bytes | None]) -> None:
    """Whole deltas' writes, with the applied offset they end at, in one WriteBatch without the WAL."""
    store.write_restored(writes)
    crash_point("restore.chunk")


def _checked(delta: dict, partition: int, base: int, last: int) -> dict:
    """The delta, if its body says what its key says (a record written under another's key is refused)."""
    if (delta["partition"], delta["base_offset"], delta["last_offset"]) != (partition, base, last):
        raise codec.SchemaError(f"its body is for partition {delta['partition']} offsets {delta['base_offset']}.."
                                f"{delta['last_offset']}, its key for {partition} {base}..{last}")
    return delta


def first_needed(cfg: Config, partition: int, pos: int) -> int:
    """The changelog offset before which no delta can help a store at applied offset ``pos`` or later
    (each ends at or before ``pos``): what trimming the log to ``pos + 1`` lets go of too."""
    consumer = new_consumer(cfg, **{"fetch.wait.max.ms": 100})
    try:
        low, end = watermarks(consumer, cfg.changelog_topic, partition)
        for m in _records(cfg, consumer, partition, pos, (low, end)):
            bounds = delta_range(m.key())
            if bounds is not None and bounds[1] > pos:
                return m.offset()
        return end
    finally:
        consumer.close()


def _records(cfg: Config, consumer: Consumer, partition: int, pos: int,
             span: tuple[int, int]) -> Iterator[ConsumedRecord]:
    """The partition's changelog records from where a delta for a store at ``pos`` may be, up to the
    end of ``span`` (the changelog's (first, end) offsets when the caller began)."""
    low, end = span
    position = _start_offset(cfg, consumer, partition, pos, low, end)
    if position >= end:
        return
    consumer.assign([TopicPartition(cfg.changelog_topic, partition, position)])
    while position < end:
        for m in cast(list[ConsumedRecord], next_batch(consumer, 5000, 1.0)):
            if m.error() is None and m.offset() < end:
                position = m.offset() + 1
                yield m


def _start_offset(cfg: Config, consumer: Consumer, partition: int, pos: int, low: int, high: int) -> int:
    """Where in the changelog the delta based on ``pos`` may start: its beginning for an empty store,
    else the first delta stamped no earlier than the log record at ``pos`` (less a margin)."""
    if pos < 0:
        return low
    stamp = record_timestamp(cfg, cfg.log_topic, partition, pos, timeout=5.0)
    if stamp is None:
        return low  # the record is gone (retention): read the changelog from its start
    at = max(0, stamp - SEEK_MARGIN_MS)
    found = consumer.offsets_for_times([TopicPartition(cfg.changelog_topic, partition, at)], timeout=10)
    offset = found[0].offset if found else -1
    return max(low, offset) if offset >= 0 else high
