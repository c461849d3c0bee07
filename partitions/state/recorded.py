"""Journals as the log recorded them, for a replay check against new code (``reprise replay``).

Each partition's topic is applied through apply() into a store in memory, exactly as a rebuild does
(``LogReplay``) but without touching the partition's store on disk: so it runs beside a live
engine, on any machine that reaches the broker, and sees what the log says (the truth), not what a
store happens to hold. What it yields is every invocation still kept (completed ones within their
retention, and every one in flight) that has a journal, with that journal's framed entries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from reprise.engine.config import Config
from reprise.engine.ids import InvocationId
from reprise.engine.kafka import log_partitions
from reprise.partitions.core.memory_store import MemoryStore
from reprise.partitions.core.tables import TablesView
from reprise.partitions.core.transaction import Transaction
from reprise.partitions.state.log_apply import LogReplay


@dataclass(frozen=True)
class RecordedInvocation:
    """One invocation's journal as the log holds it (entries framed as they travel)."""

    invocation_id: str
    service: str
    handler: str
    key: str | None
    status: str
    created_ms: int
    journal: list[bytes]


def recorded_invocations(cfg: Config, service: str | None = None, invocation_id: str | None = None,
                         since_ms: int | None = None) -> Iterator[RecordedInvocation]:
    """The invocations the log records, filtered by service, id and creation time (ms since the epoch).

    Only the partition that holds ``invocation_id`` is read when one is given."""
    count = log_partitions(cfg)
    partitions: list[int] = list(range(count))
    if invocation_id is not None:
        partitions = [InvocationId.parse(invocation_id).partition(count)]
    for partition in partitions:
        store = MemoryStore()
        with LogReplay(cfg, partition, store) as replay:
            replay.up_to(None)
        tables = TablesView(Transaction(store))
        for k, _ in store.scan(b"in/"):
            row = tables.invocations.get(k[3:].decode())
            if row is None or not row["journal_length"]:
                continue
            if invocation_id is not None and row["invocation_id"] != invocation_id:
                continue
            if service is not None and row["service"] != service:
                continue
            if since_ms is not None and row["created_ms"] < since_ms:
                continue
            yield RecordedInvocation(row["invocation_id"], row["service"], row["handler"], row["key"], row["status"],
                                     row["created_ms"], tables.journals.read(row["invocation_id"],
                                                                             row["journal_length"]))
