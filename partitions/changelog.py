"""The changelog: every apply batch's store writes, on a topic of their own, to restore a store fast.

Why: the log is the truth, but replaying it runs apply() per record (~20k records/s in Python). The
writes a batch made are its result; writing them back into RocksDB needs no apply at all. Like
Kafka Streams' changelog topics, a processor produces, after each committed batch, one
``StoreDelta``: the store's applied offset before the batch (``base``), after it (``last``), and the
batch's puts and deletes. The changelog is a cache of apply's output, never the truth:

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

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from rocksdict import WriteBatch

from engine.config import Config
from engine.kafka import high_watermark, new_consumer, next_batch
from partitions.store import RocksStore, applied_offset
from schemas import codec

log = logging.getLogger(__name__)

_KEY = struct.Struct(">qq")
_SWAP = sys.byteorder != "little"  # sizes are little-endian on the wire
# A restore writes RocksDB once per this many delta writes (bounded memory, few large writes).
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
    sizes = array("i")
    sizes.frombytes(delta["sizes"])
    if _SWAP:
        sizes.byteswap()
    data, pos = delta["data"], 0
    lengths = iter(sizes)
    for key_len in lengths:
        value_len = next(lengths)
        key = data[pos:pos + key_len]
        pos += key_len
        if value_len < 0:
            yield key, None
        else:
            yield key, data[pos:pos + value_len]
            pos += value_len
    if pos != len(data):
        raise codec.SchemaError(f"StoreDelta data holds {len(data)} bytes, its sizes account for {pos}")


def delta_key(base: int, last: int) -> bytes:
    return _KEY.pack(base, last)


def delta_range(key: bytes | None) -> tuple[int, int] | None:
    """(base, last) from a changelog record's key; None if it is not a delta's key."""
    return _KEY.unpack(key) if key is not None and len(key) == _KEY.size else None


class ChangelogWriter:
    """Produces each committed batch's delta (the processor's apply thread calls ``record``)."""

    def __init__(self, cfg: Config, producer: Producer) -> None:
        self.topic = cfg.changelog_topic
        self.producer = producer
        self.max_bytes = cfg.max_message_bytes
        self.skipped = 0  # deltas too large for one record: holes a restore replays from the log

    def record(self, partition: int, base: int, last: int, writes: dict[bytes, bytes | None],
               timestamp_ms: int = 0) -> None:
        if not writes:
            return
        value = encode_delta(partition, base, last, writes)
        if len(value) > self.max_bytes:
            self.skipped += 1
            log.info("partition %d: the delta of offsets %d..%d is %d bytes, over the record limit: not "
                     "written (a restore replays those records from the log)", partition, base + 1, last, len(value))
            return
        kwargs = {"value": value, "key": delta_key(base, last), "partition": partition,
                  "headers": codec.headers_for("StoreDelta")}
        if timestamp_ms > 0:
            kwargs["timestamp"] = timestamp_ms
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
        end = high_watermark(consumer, cfg.changelog_topic, partition)
        start = _start_offset(cfg, consumer, partition, pos)
        if start >= end:
            return done
        consumer.assign([TopicPartition(cfg.changelog_topic, partition, start)])
        batch, pending, position = WriteBatch(raw_mode=True), 0, start
        while position < end:
            for m in next_batch(consumer, 5000, 1.0):
                if m.error() is not None:
                    continue
                position = m.offset() + 1
                bounds = delta_range(m.key())
                if bounds is None or bounds[1] <= pos:
                    continue  # not a delta, or nothing in it the store lacks
                base, last = bounds
                if base > pos:  # a hole: the log's records in it, through apply()
                    if pending:
                        store.write_batch(batch)
                        batch, pending = WriteBatch(raw_mode=True), 0
                    done.replayed += replay(base)
                    pos = applied_offset(store)
                    if pos != base:
                        continue  # the log ended (or moved past) first: later deltas may still fit
                for key, value in delta_writes(codec.decode("StoreDelta", 1, m.value())):
                    if value is None:
                        batch.delete(key)
                    else:
                        batch.put(key, value)
                    pending += 1
                done.deltas += 1
                done.covered += last - base
                pos = last
                if pending >= FLUSH_WRITES:
                    store.write_batch(batch)
                    batch, pending = WriteBatch(raw_mode=True), 0
        if pending:
            store.write_batch(batch)
    finally:
        consumer.close()
        done.seconds = time.perf_counter() - started
    return done


def _start_offset(cfg: Config, consumer: Consumer, partition: int, pos: int) -> int:
    """Where in the changelog the delta based on ``pos`` may start: its beginning for an empty store,
    else the first delta stamped no earlier than the log record at ``pos`` (less a margin)."""
    low = _low_watermark(consumer, cfg.changelog_topic, partition)
    if pos < 0:
        return low
    reader = new_consumer(cfg)
    try:
        reader.assign([TopicPartition(cfg.log_topic, partition, pos)])
        first = next_batch(reader, 1, 5.0)
    finally:
        reader.close()
    if not first or first[0].error() is not None or first[0].offset() != pos:
        return low  # the record is gone (retention): read the changelog from its start
    at = max(0, first[0].timestamp()[1] - SEEK_MARGIN_MS)
    found = consumer.offsets_for_times([TopicPartition(cfg.changelog_topic, partition, at)], timeout=10)
    offset = found[0].offset if found else -1
    return max(low, offset) if offset >= 0 else high_watermark(consumer, cfg.changelog_topic, partition)


def _low_watermark(consumer: Consumer, topic: str, partition: int) -> int:
    deadline = time.monotonic() + 30
    while True:
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)[0]
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
