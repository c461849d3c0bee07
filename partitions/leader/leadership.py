"""A processor's leadership of its partitions: the adapter between the store, the log and the pure
claim state machine (partitions/leader/claims.py).

It appends this processor's claims (``LeaderEpoch`` records naming the claim it saw holding), reads
the holding claim from a partition's store after each batch with claims, and keeps the two sets the
rest of the leader reads: ``leading`` (partitions it acts for) and ``claimed`` (the epoch it claimed
each at, which its records carry). Runs on the apply thread; the event loop only reads the sets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from reprise.partitions.core.apply import LogRecord
from reprise.partitions.core.tables import TablesView
from reprise.partitions.core.transaction import KeyValueStore, Transaction
from reprise.partitions.leader.claims import Claim, Claims
from reprise.schemas.records import LeaderEpoch

log = logging.getLogger(__name__)

ClaimSink = Callable[[int, LeaderEpoch], None]
"""Appends a LeaderEpoch record to a partition's log (the processor's producer)."""
StepDown = Callable[[int, Claim], None]
"""Stops acting for a partition at once, given the claim that now holds it (the event loop's side)."""


def holding_claim(store: KeyValueStore) -> Claim:
    """The claim that holds the partition in ``store``: the last one apply() accepted."""
    tables = TablesView(Transaction(store))
    return Claim(tables.leadership.epoch(), tables.leadership.owner() or "")


def batch_claims(records: Iterable[LogRecord]) -> tuple[list[Claim], dict[Claim, Claim]]:
    """A batch's claims in log order, and for those that say so (v2 records) the claim their writer
    saw holding."""
    values = [r.value for r in records if r.kind == "LeaderEpoch"]
    claims = [Claim(v["epoch"], v["owner"]) for v in values]
    seen = {Claim(v["epoch"], v["owner"]): Claim(v["seen_epoch"], v["seen_owner"])
            for v in values if v.get("seen_owner")}
    return claims, seen


class Leadership:
    """Claims partitions for ``owner`` and decides, batch by batch, whether it leads them."""

    def __init__(self, owner: str, append_claim: ClaimSink, step_down: StepDown, clock: Callable[[], int]) -> None:
        self.owner = owner
        self.claims = Claims(owner)  # when to lead, step down, claim again or yield
        self.leading: set[int] = set()
        self.claimed: dict[int, int] = {}  # partition -> epoch this process claimed
        self._append, self._step_down, self._clock = append_claim, step_down, clock

    def claim_gained(self, partition: int, store: KeyValueStore) -> None:
        """A partition just gained: claim it one above the claim holding in its store."""
        held = holding_claim(store)
        self.claim(partition, self.claims.first(partition, held.epoch), held)

    def claim(self, partition: int, epoch: int, seen: Claim) -> None:
        """Claim above ``seen``, the claim holding in our store: its owner yields to us at once."""
        self.claimed[partition] = epoch
        self._append(partition, {"partition": partition, "epoch": epoch, "owner": self.owner,
                                 "timestamp_ms": self._clock(), "seen_epoch": seen.epoch, "seen_owner": seen.owner})

    def forget(self, partition: int) -> None:
        """The partition is no longer owned: no claim, no leadership."""
        self.leading.discard(partition)
        self.claimed.pop(partition, None)
        self.claims.forget(partition)

    def after_batch(self, partition: int, store: KeyValueStore, records: list[LogRecord]) -> bool:
        """After a batch applied to ``store``: lead, step down, claim again or yield. True when this
        batch made the processor the partition's leader.

        A claim holds when the store's current (epoch, owner) is (our claim, us): an epoch alone
        would not do, since two processors may claim the same number.
        """
        claims, seen = batch_claims(records)
        if not claims:
            return False
        holder = holding_claim(store)
        decision = self.claims.after_batch(partition, claims, holder, partition in self.leading, seen)
        if decision.step_down:
            self.leading.discard(partition)
            self._step_down(partition, holder)
        if decision.yielded_to is not None:
            log.warning("partition %d: %s took it over from our claim (or claimed again above it): a live "
                        "processor; yielding to it", partition, decision.yielded_to)
        if decision.claim is not None:
            log.warning("partition %d: epoch %d of %s is not ours; claiming again at %d", partition, holder.epoch,
                        holder.owner, decision.claim)
            self.claim(partition, decision.claim, holder)
        if decision.lead:
            self.leading.add(partition)
        return decision.lead
