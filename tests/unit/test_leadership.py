"""The leader's adapter around the claim state machine (partitions/leader/leadership.py): claims it
appends, and what it does after a batch, over a real apply() and the in-memory store (no broker)."""

from __future__ import annotations

from typing import Any

from reprise.partitions.core.apply import LogRecord
from reprise.partitions.leader.claims import Claim
from reprise.partitions.leader.leadership import Leadership, batch_claims, holding_claim
from tests.unit.apply_helpers import Partition


class Harness:
    """One partition's log and store, and a Leadership for ``owner`` whose claims land in that log."""

    def __init__(self, owner: str = "me") -> None:
        self.part = Partition(0)
        self.appended: list[dict[str, Any]] = []
        self.stepped_down: list[Claim] = []
        self.lead = Leadership(owner, lambda _p, claim: self.appended.append(dict(claim)),
                               lambda _p, holder: self.stepped_down.append(holder), lambda: 42)

    def history(self, *claims: dict[str, Any]) -> None:
        """Claims in the log before this processor owned the partition."""
        for c in claims:
            self.part.feed("LeaderEpoch", c)

    def apply(self, *claims: dict[str, Any]) -> bool:
        """Apply ``claims`` as one batch, then let the leadership look at it."""
        records = []
        for c in claims:
            self.part.feed("LeaderEpoch", c)
            records.append(LogRecord("LeaderEpoch", 2, c, self.part.offset, 1_000))
        return self.lead.after_batch(0, self.part.store, records)

    def apply_appended(self) -> bool:
        batch, self.appended = self.appended, []
        return self.apply(*batch)


def claim(epoch: int, owner: str, seen: Claim | None = None) -> dict[str, Any]:
    seen = seen or Claim(0, "")
    return {"partition": 0, "epoch": epoch, "owner": owner, "timestamp_ms": 1, "seen_epoch": seen.epoch,
            "seen_owner": seen.owner}


def test_a_gained_partition_is_claimed_above_its_holder_and_led_once_the_claim_is_applied() -> None:
    h = Harness()
    h.history(claim(3, "old"))
    h.lead.claim_gained(0, h.part.store)
    assert h.appended == [{"partition": 0, "epoch": 4, "owner": "me", "timestamp_ms": 42, "seen_epoch": 3,
                           "seen_owner": "old"}]
    assert h.lead.claimed == {0: 4} and h.lead.leading == set()
    assert h.apply_appended() is True
    assert h.lead.leading == {0} and h.stepped_down == []
    assert h.lead.after_batch(0, h.part.store, []) is False  # a batch without claims decides nothing
    assert h.lead.leading == {0}


def test_a_takeover_that_saw_our_claim_makes_us_step_down_without_claiming_back() -> None:
    h = Harness()
    h.lead.claim_gained(0, h.part.store)
    h.apply_appended()
    assert h.apply(claim(2, "new", seen=Claim(1, "me"))) is False
    assert h.lead.leading == set() and h.stepped_down == [Claim(2, "new")]
    assert h.appended == []  # yielded: no claim back
    assert h.lead.claims.yielded_to(0) == "new"


def test_a_blind_claim_above_ours_is_answered_with_a_claim_above_it() -> None:
    h = Harness()
    h.lead.claim_gained(0, h.part.store)
    h.apply_appended()
    h.apply(claim(5, "forger"))
    assert h.stepped_down == [Claim(5, "forger")] and h.lead.leading == set()
    assert h.appended == [claim(6, "me", seen=Claim(5, "forger")) | {"timestamp_ms": 42}]
    assert h.lead.claimed == {0: 6}
    assert h.apply_appended() is True and h.lead.leading == {0}


def test_forgetting_a_partition_drops_its_claim_and_leadership() -> None:
    h = Harness()
    h.lead.claim_gained(0, h.part.store)
    h.apply_appended()
    h.lead.forget(0)
    assert h.lead.leading == set() and h.lead.claimed == {} and h.lead.claims.epoch(0) is None


def test_the_holding_claim_is_the_last_one_apply_accepted() -> None:
    h = Harness()
    assert holding_claim(h.part.store) == Claim(0, "")
    h.history(claim(2, "a"), claim(2, "b"), claim(1, "c"))  # b and c are refused: not above the epoch
    assert holding_claim(h.part.store) == Claim(2, "a")


def test_a_batch_names_its_claims_in_order_and_what_v2_writers_saw() -> None:
    v1 = {"partition": 0, "epoch": 1, "owner": "old", "timestamp_ms": 0}
    records = [LogRecord("LeaderEpoch", 1, v1, 0, 0), LogRecord("Invoke", 1, {}, 1, 0),
               LogRecord("LeaderEpoch", 2, claim(2, "new", seen=Claim(1, "old")), 2, 0),
               LogRecord("LeaderEpoch", 2, claim(3, "x"), 3, 0)]
    claims, seen = batch_claims(records)
    assert claims == [Claim(1, "old"), Claim(2, "new"), Claim(3, "x")]
    assert seen == {Claim(2, "new"): Claim(1, "old")}  # an empty seen_owner says nothing
