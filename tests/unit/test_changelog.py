"""The changelog's delta: a batch's writes, encoded and read back; applied in order, they rebuild a store."""

from __future__ import annotations

import pytest

from partitions.apply import LogRecord, apply_batch
from partitions.changelog import delta_key, delta_range, delta_writes, encode_delta
from partitions.store import APPLIED_OFFSET, MemoryStore, Transaction
from schemas import codec
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


def test_the_key_names_the_range_and_nothing_else_passes_for_one() -> None:
    assert delta_range(delta_key(-1, 7)) == (-1, 7)
    assert delta_range(delta_key(2**40, 2**40 + 9)) == (2**40, 2**40 + 9)
    assert delta_range(None) is None and delta_range(b"short") is None


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_the_deltas_of_every_batch_replayed_in_order_give_the_same_store(batch: int) -> None:
    """What Transaction.commit returns is exactly what it wrote: written back batch by batch, the
    deltas give the same bytes as applying the records (in the live order, records of one invocation
    in different batches), with no apply() at all."""
    log = interleaved(recorded_log(300), 16)
    applied, deltas = MemoryStore(), []
    base = -1
    for start in range(0, len(log), batch):
        chunk = log[start:start + batch]
        records = [LogRecord(kind, codec.CURRENT[kind], codec.decode(kind, codec.CURRENT[kind], body), start + i, 1)
                   for i, (kind, body) in enumerate(chunk)]
        tx = Transaction(applied)
        assert not apply_batch(tx, 0, 8, records).rejected
        last = start + len(chunk) - 1
        deltas.append(encode_delta(0, base, last, tx.commit(last)))
        base = last
    restored = MemoryStore()
    for body in deltas:
        restored.write(dict(decoded(body)))
    assert restored.data == applied.data
    assert restored.data[APPLIED_OFFSET] == str(len(log) - 1).encode()
    assert any(v is None for body in deltas for _, v in decoded(body))  # deletes were carried too
