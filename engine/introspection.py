"""What the admin API may ask of the partitions a process holds, without importing them.

``partitions`` implements it over its stores; the composition root hands it to the admin API.
"""

from __future__ import annotations

from typing import Any, Protocol


class Introspector(Protocol):
    def invocations(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        """Summaries of invocations, optionally of one status, newest first."""
        ...

    def describe(self, invocation_id: str) -> dict[str, Any] | None:
        """One invocation with its journal decoded to readable form, or None if unknown here."""
        ...

    def state(self, service: str, key: str) -> dict[str, str]:
        """An object's or workflow's state (values as UTF-8 text where they are)."""
        ...

    def timers(self, limit: int) -> list[dict[str, Any]]:
        """Pending durable timers, soonest first."""
        ...


class PartitionControl(Protocol):
    """What a processor's admin API may do to the partitions it owns."""

    def owned(self) -> list[dict[str, Any]]:
        """One row per owned partition: number, leading or not, applied offset, newest snapshot."""
        ...

    def snapshot(self, partition: int) -> dict[str, Any] | None:
        """Snapshot the partition now; None if this process does not own it."""
        ...
