"""partitions/leader/outbox_lanes.py: one entry in flight per receiving log partition, lowest seq first."""

from __future__ import annotations

from reprise.partitions.leader.outbox_lanes import Lanes

A, B = ("log", 1), ("log", 2)


def test_the_first_entry_to_a_partition_goes_at_once_and_later_ones_wait() -> None:
    lanes = Lanes()
    assert lanes.admit(A, 0)
    assert not lanes.admit(A, 1) and not lanes.admit(A, 3)
    assert lanes.admit(B, 2)  # another partition: its own lane
    assert lanes.blocked_by(A) == 0 and lanes.blocked_by(B) == 2


def test_each_acknowledgement_releases_the_lowest_waiting_entry() -> None:
    lanes = Lanes()
    lanes.admit(A, 0)
    for seq in (5, 2, 4):
        lanes.admit(A, seq)
    assert [lanes.delivered(A, 0), lanes.delivered(A, 2), lanes.delivered(A, 4), lanes.delivered(A, 5)] == \
        [2, 4, 5, None]
    assert lanes.blocked_by(A) is None and lanes.admit(A, 6)  # an empty lane: the next goes at once


def test_a_failed_entry_keeps_its_lane_until_it_is_delivered() -> None:
    """Nothing but an acknowledgement of the entry in flight moves a lane: a failure changes nothing,
    so no later entry can reach the partition before it."""
    lanes = Lanes()
    lanes.admit(A, 0)
    lanes.admit(A, 1)
    assert lanes.blocked_by(A) == 0  # failed, being retried
    assert lanes.delivered(A, 1) is None and lanes.blocked_by(A) == 0  # not in flight: no effect
    assert lanes.delivered(A, 0) == 1


def test_in_flight_never_holds_two_entries_of_one_lane() -> None:
    lanes = Lanes()
    in_flight: dict[tuple[str, int], int] = {}
    for seq in range(40):
        dest = A if seq % 3 else B
        if lanes.admit(dest, seq):
            assert dest not in in_flight
            in_flight[dest] = seq
        if seq % 4 == 3:  # acknowledge what is in flight
            for d, s in list(in_flight.items()):
                nxt = lanes.delivered(d, s)
                del in_flight[d]
                if nxt is not None:
                    assert nxt > s
                    in_flight[d] = nxt


def test_backlogged_while_an_entry_waits() -> None:
    lanes = Lanes()
    lanes.admit(A, 0)
    assert not lanes.backlogged()
    lanes.admit(A, 1)
    assert lanes.backlogged()
    lanes.delivered(A, 0)
    assert not lanes.backlogged()  # 1 in flight, nothing behind it
