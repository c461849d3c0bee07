"""What every apply handler gets: the batch's tables, where it is, and where actions go."""

from __future__ import annotations

from dataclasses import dataclass, field

from reprise.partitions.core.actions import Action
from reprise.partitions.core.tables import Tables


@dataclass
class ApplyContext:
    tables: Tables
    partition: int
    partitions: int
    offset: int
    actions: list[Action] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    # (offset, service, handler, outcome) of each invocation the batch completed: the processor counts
    # them; the offset lets a record that is rolled back take its own out again
    completed: list[tuple[int, str, str, str]] = field(default_factory=list)

    def drop(self, reason: str) -> None:
        """Record why a record changed nothing (counted by the processor, useful in tests)."""
        self.dropped.append(reason)
