"""partitions/core/tables.py inbox: first in, first out, seeking past the entry taken last."""

from __future__ import annotations

from pathlib import Path

from reprise.partitions.core import tables as tables_module
from reprise.partitions.core.tables import Tables
from reprise.partitions.core.transaction import Transaction
from reprise.partitions.state.rocks_store import RocksStore


def test_inbox_pops_in_arrival_order_across_batches_and_without_a_head_row(tmp_path: Path) -> None:
    store = RocksStore(tmp_path / "db")
    tx = Transaction(store)
    tables = Tables(tx)
    for inv in ("a", "b", "c"):
        tables.objects.push("Counter", "k", inv)
    tables.objects.push("Counter", "other", "x")
    assert tables.objects.pop("Counter", "k") == "a"  # within the batch that pushed it
    tx.commit(1)
    popped = []
    for offset in range(2, 6):
        tx = Transaction(store)
        tables = Tables(tx)
        if offset == 3:
            tables.objects.push("Counter", "k", "d")  # arrives after the head moved
        popped.append(tables.objects.pop("Counter", "k"))
        tx.commit(offset)
    assert popped == ["b", "c", "d", None]
    # A store written before the head row existed (or that lost it): the pop scans from the start
    tx = Transaction(store)
    tables = Tables(tx)
    tables.objects.push("Counter", "k", "e")
    tables.objects.push("Counter", "k", "f")
    tx.delete(b"ih/" + tables_module._object("Counter", "k"))
    assert tables.objects.pop("Counter", "k") == "e" and tables.objects.waiting("Counter", "k") == ["f"]
    assert tables.objects.pop("Counter", "other") == "x"
    store.close()
