"""Outbox order per receiving log partition: one entry in flight at a time, lowest seq first.

A log partition keeps, per source partition, only the highest outbox seq it applied and drops
anything at or below it as a copy. So an entry must reach its partition before any later entry of
the same source does, even when its delivery fails: once a later one landed, the earlier one is
dropped when it is sent again (a call or a reply lost). Holding later entries back only after a
failure is reported cannot undo entries already in flight: Kafka may refuse one batch for good and
take a later one (the idempotent producer then starts a new sequence and leaves the gap). Hence a
lane per receiving partition with at most one entry in flight: the next goes once the previous one
is acknowledged; a failed one stays in flight (retried) and everything behind it waits.

The cost is one Kafka round trip per entry *to the same partition*; entries to different partitions
go out together. Replies leave the log (their receivers keep no high-water) and take no lane.
Pure bookkeeping: the shipper (partitions/leader/shipper.py) produces.
"""

from __future__ import annotations

import bisect

Destination = tuple[str, int]  # (topic, partition)


class Lanes:
    """The entries to each destination: the one in flight and those waiting, lowest seq first."""

    __slots__ = ("in_flight", "waiting")

    def __init__(self) -> None:
        self.in_flight: dict[Destination, int] = {}
        self.waiting: dict[Destination, list[int]] = {}

    def admit(self, dest: Destination, seq: int) -> bool:
        """True: ship ``seq`` now (it is in flight from here on); False: it waits its turn."""
        if dest in self.in_flight:
            bisect.insort(self.waiting.setdefault(dest, []), seq)
            return False
        self.in_flight[dest] = seq
        return True

    def delivered(self, dest: Destination, seq: int) -> int | None:
        """``seq`` was acknowledged: the next one to ship to ``dest`` (now in flight), if any."""
        if self.in_flight.get(dest) != seq:
            return None
        waiting = self.waiting.get(dest)
        if not waiting:
            del self.in_flight[dest]
            return None
        nxt = self.in_flight[dest] = waiting.pop(0)
        if not waiting:
            del self.waiting[dest]
        return nxt

    def backlogged(self) -> bool:
        """Some entry waits for an acknowledgement to go (then acks are worth serving at once)."""
        return bool(self.waiting)

    def blocked_by(self, dest: Destination) -> int | None:
        """The entry in flight to ``dest`` (a failed one stays in flight until it is delivered)."""
        return self.in_flight.get(dest)
