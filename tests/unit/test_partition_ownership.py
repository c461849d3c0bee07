"""A processor's ownership decisions (partitions/leader/ownership.py): where a gained partition
resumes, when it is restored from the changelog first, when the process is ready, and what losing a
partition stops, in which order (no broker)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import OFFSET_BEGINNING

from reprise.partitions.leader.ownership import Ownership, readiness, restores_from_changelog, resume_offset


def test_a_partition_resumes_after_its_applied_offset_or_at_the_beginning() -> None:
    assert resume_offset(41) == 42
    assert resume_offset(0) == 1
    assert resume_offset(-1) == OFFSET_BEGINNING  # a fresh store: the log's first record, whatever its offset


def test_only_a_store_far_enough_behind_its_log_is_restored_from_the_changelog() -> None:
    # the log ends at 10,100 (its last record is 10,099)
    assert restores_from_changelog(applied=99, log_end=10_100, behind_threshold=10_000)
    assert not restores_from_changelog(applied=100, log_end=10_100, behind_threshold=10_000)
    assert not restores_from_changelog(applied=10_099, log_end=10_100, behind_threshold=0)  # caught up: never
    assert restores_from_changelog(applied=10_098, log_end=10_100, behind_threshold=0)  # 0 means any lag


def test_ready_once_every_owned_partition_is_led() -> None:
    assert readiness(False, False, {0, 1}, {0, 1}) is None
    assert readiness(False, False, {0, 1, 2}, {1}) == "catching up on partitions [0, 2]"
    assert readiness(True, False, set(), set()) == "no partitions assigned by the consumer group yet"
    assert readiness(True, True, set(), set()) is None  # assigned nothing: more processors than partitions


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def forget(self, partition: int) -> None:
        self.calls.append(("forget leadership", partition))

    def flush(self, partition: int) -> None:
        self.calls.append(("flush changelog", partition))

    def release(self, partition: int) -> None:
        self.calls.append(("release", partition))

    def close(self) -> None:
        self.calls.append(("close store",))


def test_losing_a_partition_stops_leading_before_its_store_closes() -> None:
    r = Recorder()
    owned = Ownership(None, None, r, r, r.release)  # type: ignore[arg-type]
    owned.stores.update({0: r, 1: r})  # type: ignore[dict-item]
    owned.lose(0)
    assert r.calls == [("forget leadership", 0), ("flush changelog", 0), ("release", 0), ("close store",)]
    assert set(owned.stores) == {1}
    owned.lose(0)  # revoked twice (a lost assignment after a revoke): nothing left to close
    assert r.calls[4:] == [("forget leadership", 0), ("flush changelog", 0), ("release", 0)]
