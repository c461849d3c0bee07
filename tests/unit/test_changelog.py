"""The changelog's delta: a batch's writes, encoded and read back; applied in order, they rebuild a store."""

from __future__ import annotations

import pytest

from reprise.engine.config import Config
from reprise.partitions.core.apply import LogRecord, apply_batch
from reprise.partitions.core.memory_store import MemoryStore
from reprise.partitions.core.transaction import Transaction
from reprise.partitions.state.changelog import (
    ChangelogWriter,
    delta_key,
    delta_range,
    delta_writes,
    encode_delta,
    merge_delta,
)
from reprise.schemas import codec
from tests.bench.apply_loop import interleaved, recorded_log


def decoded(body: bytes) -> list[tuple[bytes, bytes | None]]:
    return list(delta_writes(codec.decode("StoreDelta", 1, body)))


def test_a_delta_carries_puts_deletes_and_empty_values_in_order() -> None:
    writes = {b"in/a": b"row", b"ob/\x00\x01": None, b"st/k": b"", b"j/" + bytes(range(256)): b"\xff" * 70_000}
    body = encode_delta(3, 41, 49, writes)
    delta = codec.decode("StoreDelta", 1, body)
    assert (delta["partition"], delta["base_offset"], delta["last_offset"]) == (3, 41, 49)
    assert decoded(body) == list(writes.items())  # a delete (None) stays apart from an empty value


def test_a_delta_whose_sizes_do_not_match_its_data_is_refused() -> None:
    body = codec.decode("StoreDelta", 1, encode_delta(0, -1, 0, {b"k": b"v"}))
    body["data"] += b"x"
    with pytest.raises(codec.SchemaError):
        list(delta_writes(body))
    body["data"] = body["data"][:-1]
    body["sizes"] += (5).to_bytes(4, "little")  # a key with no value length
    with pytest.raises(codec.SchemaError):
        list(delta_writes(body))


def test_a_bad_delta_leaves_what_it_was_merged_into_untouched() -> None:
    merged = merge_delta(codec.decode("StoreDelta", 1, encode_delta(0, -1, 0, {b"a": b"1", b"b": None})), {})
    assert merged == {b"a": b"1", b"b": None}
    bad = codec.decode("StoreDelta", 1, encode_delta(0, 0, 1, {b"a": b"2", b"c": b"3"}))
    bad["data"] = bad["data"][:-1]  # its last value cut short
    with pytest.raises(codec.SchemaError):
        merge_delta(bad, merged)
    # lengths that add up to the data but are negative: a key of -3 bytes, a value of 5
    bad["sizes"], bad["data"] = (-3).to_bytes(4, "little", signed=True) + (5).to_bytes(4, "little"), b"xy"
    with pytest.raises(codec.SchemaError):
        merge_delta(bad, merged)
    assert merged == {b"a": b"1", b"b": None}


def test_the_key_names_the_range_and_nothing_else_passes_for_one() -> None:
    assert delta_range(delta_key(-1, 7)) == (-1, 7)
    assert delta_range(delta_key(2**40, 2**40 + 9)) == (2**40, 2**40 + 9)
    assert delta_range(None) is None and delta_range(b"short") is None


class FakeProducer:
    """What ChangelogWriter produces, kept in order (the unit tests' stand-in for Kafka)."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def produce(self, topic: str, **kwargs: object) -> None:
        self.records.append({"topic": topic, **kwargs})


def writer(max_records: int, max_delay_s: float = 60.0) -> tuple[ChangelogWriter, FakeProducer]:
    producer = FakeProducer()
    return ChangelogWriter(Config(namespace="t"), producer, max_records, max_delay_s), producer  # type: ignore[arg-type]


@pytest.mark.parametrize(("batch", "merge"), [(1, 1), (7, 1), (64, 1), (1, 50), (7, 1000)])
def test_the_deltas_replayed_in_order_give_the_same_store(batch: int, merge: int) -> None:
    """What Transaction.commit returns is exactly what it wrote, and merged batches are one valid
    delta: written back, the deltas give the same bytes as applying the records (in the live order,
    records of one invocation in different batches), with no apply() at all."""
    log = interleaved(recorded_log(300), 16)
    applied, (changelog, producer) = MemoryStore(), writer(merge)
    base = -1
    for start in range(0, len(log), batch):
        chunk = log[start:start + batch]
        records = [LogRecord(kind, codec.CURRENT[kind], codec.decode(kind, codec.CURRENT[kind], body), start + i, 1)
                   for i, (kind, body) in enumerate(chunk)]
        tx = Transaction(applied)
        assert not apply_batch(tx, 0, 8, records).rejected
        last = start + len(chunk) - 1
        changelog.record(0, base, last, tx.commit(last), timestamp_ms=5)
        base = last
    changelog.flush()
    per_delta = -(-merge // batch) * batch  # whole batches, until at least ``merge`` records
    restored, position = MemoryStore(), -1
    for r in producer.records:
        assert r["topic"] == "t.changelog" and r["partition"] == 0 and r["timestamp"] == 5
        first, last = delta_range(r["key"])
        assert first == position and last - first <= per_delta  # contiguous, merged up to the bound
        restored.write(dict(decoded(r["value"])))
        position = last
    assert position == len(log) - 1
    assert len(producer.records) == -(-len(log) // per_delta)
    assert restored.data == applied.data
    assert any(v is None for r in producer.records for _, v in decoded(r["value"]))  # deletes were carried too


def test_a_batch_that_does_not_follow_the_pending_one_starts_a_new_delta() -> None:
    changelog, producer = writer(1000)
    changelog.record(2, 9, 12, {b"a": b"1"})
    changelog.record(2, 12, 15, {b"a": b"2", b"b": None})  # follows: merged, the later value wins
    changelog.record(2, 40, 41, {b"c": b"3"})  # a gap (another owner applied 16..40): flushes the first
    changelog.record(3, -1, 0, {b"d": b"4"})
    assert [delta_range(r["key"]) for r in producer.records] == [(9, 15)]
    assert decoded(producer.records[0]["value"]) == [(b"a", b"2"), (b"b", None)]
    changelog.flush(3)
    changelog.flush()
    assert [(r["partition"], delta_range(r["key"])) for r in producer.records] == [(2, (9, 15)), (3, (-1, 0)),
                                                                                  (2, (40, 41))]


def test_a_pending_delta_goes_out_when_it_is_old_enough() -> None:
    changelog, producer = writer(1000, max_delay_s=0.0)
    changelog.record(0, -1, 3, {b"a": b"1"})  # already as old as allowed: out at once
    assert len(producer.records) == 1
    changelog, producer = writer(1000, max_delay_s=30.0)
    changelog.record(0, -1, 3, {b"a": b"1"})
    changelog.tick()
    assert producer.records == []  # young: it waits for more batches


def test_a_delta_over_the_record_limit_is_left_as_a_hole() -> None:
    changelog = ChangelogWriter(Config(namespace="t", max_message_bytes=1000), FakeProducer())  # type: ignore[arg-type]
    changelog.record(0, -1, 3, {b"big": b"x" * 2000})  # over a quarter of the limit: flushed, too large
    assert changelog.producer.records == [] and changelog.skipped == 1  # type: ignore[attr-defined]
