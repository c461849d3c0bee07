"""Retention of completed plain invocations: indexed at completion, forgotten by a RetentionSweep."""

from __future__ import annotations

from typing import Any

from reprise.engine.ids import InvocationId
from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import encode_message
from reprise.partitions.core.memory_store import MemoryStore
from reprise.partitions.core.transaction import Transaction
from tests.unit.apply_helpers import N, Partition, invoke, new_partition

OUTPUT = encode_message(pb.OutputCommandMessage(value=pb.Value(content=b'"done"')))


def sweep(p: Partition, before_ms: int, limit: int = 100, epoch: int = 1) -> None:
    p.feed("RetentionSweep", {"epoch": epoch, "before_ms": before_ms, "limit": limit})


def completed(p: Partition, n: int, **extra: Any) -> list[str]:
    """``n`` invocations on partition 0, completed at 2,000, 2,001, ... ms."""
    ids = [str(next(iid for j in range(10_000) if (iid := InvocationId.derived(f"r{i}-{j}", "test", j))
                    .partition(N) == 0)) for i in range(n)]
    for i, inv in enumerate(ids):
        invoke(p, inv, **extra)
        p.effects(inv, 1, [OUTPUT], {}, ts=2_000 + i)
    return ids


def test_a_completion_older_than_the_cutoff_is_forgotten_with_its_journal() -> None:
    p = new_partition()
    [inv] = completed(p, 1)
    assert p.tables.journals.read(inv, 2)
    sweep(p, before_ms=2_000)  # completed at 2,000: not before it
    assert p.tables.invocations.get(inv) is not None
    sweep(p, before_ms=2_001)
    assert p.tables.invocations.get(inv) is None and p.tables.journals.entry(inv, 0) is None
    assert p.tables.completions.before(10**12, 10) == []


def test_idempotent_invocations_keep_their_own_retention() -> None:
    p = new_partition()
    [inv] = completed(p, 1, idempotency_key="once")
    sweep(p, before_ms=10**12)
    assert p.status(inv)["status"] == "COMPLETED"  # its cleanup timer forgets it, not the sweep
    assert [t["kind"] for _, t in p.tables.timers.all()] == ["cleanup"]


def test_one_sweep_forgets_at_most_its_limit_oldest_first_and_a_stale_one_nothing() -> None:
    p = new_partition()
    ids = completed(p, 3)
    sweep(p, before_ms=10**12, limit=5, epoch=0)  # an older leader's: ignored
    assert all(p.tables.invocations.get(i) is not None for i in ids)
    sweep(p, before_ms=10**12, limit=2)
    assert [p.tables.invocations.get(i) is None for i in ids] == [True, True, False]
    sweep(p, before_ms=10**12, limit=2)
    assert p.tables.invocations.get(ids[2]) is None


def test_a_purged_invocation_leaves_only_its_index_entry_which_the_sweep_drops() -> None:
    p = new_partition()
    [inv] = completed(p, 1)
    p.feed("AdminCommand", {"invocation_id": inv, "command": "purge", "reply_to": None})
    assert p.tables.invocations.get(inv) is None and len(p.tables.completions.before(10**12, 10)) == 1
    sweep(p, before_ms=10**12)
    assert p.tables.completions.before(10**12, 10) == []


def test_scan_below_merges_the_transactions_writes_and_reads_only_what_it_needs() -> None:
    store = MemoryStore()
    store.write({b"a/1": b"1", b"a/2": b"2", b"a/3": b"3", b"a/4": b"4", b"b/0": b"x"})
    tx = Transaction(store)
    tx.delete(b"a/1")
    tx.put(b"a/0", b"0")
    assert tx.scan_below(b"a/", b"a/4", 2) == [(b"a/0", b"0"), (b"a/2", b"2")]
    assert tx.scan_below(b"a/", b"a/4", 10) == [(b"a/0", b"0"), (b"a/2", b"2"), (b"a/3", b"3")]
    assert tx.scan_below(b"a/", b"a/0", 10) == []
