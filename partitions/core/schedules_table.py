"""``sc/``: the partition's durable cron schedules, one row per schedule id (a Schedule, Avro).

A schedule's next tick is an ordinary row of the timer table (kind ``schedule``), which the
leader's timer service fires like any other; the row here names that timer, so a timer that no
longer matches it (the schedule was paused, resumed or deleted since) changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from reprise.partitions.core.transaction import Transaction
from reprise.schemas import codec

Row = dict[str, Any]
_PREFIX = b"sc/"


class SchedulesView:
    """Read-only: for introspection and the admin API."""

    __slots__ = ("tx",)

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    def get(self, schedule_id: str) -> Row | None:
        raw = self.tx.get(_PREFIX + schedule_id.encode())
        return codec.decode_stored("Schedule", raw) if raw is not None else None

    def all(self) -> Iterator[Row]:
        for _, v in self.tx.scan(_PREFIX):
            yield codec.decode_stored("Schedule", v)


class Schedules(SchedulesView):
    """Written by apply() only (partitions/core/apply/schedule.py)."""

    __slots__ = ()

    def put(self, row: Row) -> None:
        self.tx.put(_PREFIX + row["schedule_id"].encode(), codec.encode_stored("Schedule", row))

    def delete(self, schedule_id: str) -> None:
        self.tx.delete(_PREFIX + schedule_id.encode())
