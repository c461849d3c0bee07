"""Crafted records of every kind (tests/crafted.py) through apply() on the in-memory store.

Whatever a record holds, apply() applies or rejects it; a rejected one leaves the store as it was;
the same records give the same bytes and rejections again, in one batch or one batch each.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from reprise.partitions.core.apply import LogRecord, Rejected, apply_batch
from reprise.partitions.core.errors import Rejection
from reprise.partitions.core.transaction import APPLIED_OFFSET, Transaction
from reprise.schemas import codec
from tests.crafted import KINDS, Crafter
from tests.unit.apply_helpers import N, invoke, new_partition, run, run_done, suspended

ROUNDS = 40  # records per kind


def crafted_log(seed: int, known: list[str]) -> list[LogRecord]:
    crafter = Crafter(seed, 0, N, big=5_000, known_ids=known)
    records = []
    for i in range(ROUNDS * len(KINDS)):
        kind = KINDS[i % len(KINDS)]
        version = codec.CURRENT[kind]
        body = crafter.encoded(kind)
        records.append(LogRecord(kind, version, codec.decode(kind, version, body), 100 + i, 5_000 + i))
    return records


def seeded_partition() -> tuple[Any, list[str]]:
    """A partition with invocations the crafted records can name: one suspended, one running."""
    p = new_partition()
    crafter = Crafter(0, 0, N)
    suspended_inv, running = crafter.here[0], crafter.here[1]
    invoke(p, suspended_inv)
    p.effects(suspended_inv, 1, [run(1)], suspended(1))
    invoke(p, running)
    p.effects(running, 1, [run(1), run_done(1, b'"A"')], suspended(1))
    return p, [suspended_inv, running]


def apply_all(batches: list[list[LogRecord]]) -> tuple[dict[bytes, bytes], list[Rejected]]:
    p, _ = seeded_partition()
    rejected: list[Rejected] = []
    for batch in batches:
        tx = Transaction(p.store)
        rejected += apply_batch(tx, 0, N, batch).rejected
        tx.commit(batch[-1].offset)
    p.check_remembered_rows()
    return p.store.data, rejected


def test_each_crafted_record_applies_or_is_rejected_whole() -> None:
    p, known = seeded_partition()
    reasons: Counter[tuple[str, str]] = Counter()
    failed: list[str] = []
    for rec in crafted_log(1, known):
        before = {k: v for k, v in p.store.data.items() if k != APPLIED_OFFSET}
        tx = Transaction(p.store)
        result = apply_batch(tx, 0, N, [rec])
        tx.commit(rec.offset)
        for r in result.rejected:
            reasons[(r.kind, r.reason.value)] += 1
            if r.reason == Rejection.FAILED:
                failed.append(r.message)
            assert {k: v for k, v in p.store.data.items() if k != APPLIED_OFFSET} == before, r
            assert result.actions == []
    # Every kind met its checks (most crafted records are hostile), and the checks, not the handlers'
    # failures, caught them. The checks read no protobuf payload (that would double an effects
    # record's cost): a journal entry whose payload does not parse is the one fault left to handlers.
    assert {kind for kind, _ in reasons} == set(KINDS), reasons
    assert all("ProtocolError" in m for m in failed), failed


def test_the_same_crafted_records_give_the_same_bytes_however_batched() -> None:
    _, known = seeded_partition()
    records = crafted_log(2, known)
    together = apply_all([records])
    apart = apply_all([[r] for r in records])
    in_tens = apply_all([records[i:i + 10] for i in range(0, len(records), 10)])
    assert together == apart == in_tens  # a replay (a rebuild) batches differently: same bytes
    assert len(together[1]) > len(records) // 2

