"""A processor's claims on its partitions: when it leads, steps down, claims again or yields.

The store says who holds a partition: the (epoch, owner) of the last claim apply() accepted. A
processor leads while that is (its latest claim, itself). The log can also carry a claim no live
processor made: a forged one, or a stale one that arrived late. Stepping down for good on any newer
claim would let one such record stop the partition (no attempts, timers or outbox). So:

1. A processor's claim is in flight until it has applied it. Claims before it are history: it
   neither leads nor answers them.
2. Its claim applied and holding: it leads.
3. A takeover: the first claim above its holding claim names that claim as the one its writer saw
   holding (LeaderEpoch v2 ``seen_*``). Its writer applied our claim and took the partition on
   purpose (a newcomer, a new group member): this processor steps down and yields to it at once,
   without a claim of its own. A frozen old leader that wakes up after a takeover therefore leaves
   the newcomer alone: the newcomer never steps down, so its attempts in flight run to the end.
4. Any other claim it did not write now holds (its own refused, or a newer one after it led, that
   did not see it): it stops acting at once, then claims again above it, once per owner that
   displaced it.
5. An owner it has claimed against once claims above it again: that owner is a live processor
   that also claims again, and this one yields to it for as long as it owns the partition, so two
   live processors settle in two rounds instead of taking the partition from each other forever
   (peers whose claims do not say what they saw: v1 records).

Why a takeover cannot keep the old leader's attempts, nor an answered claim the newcomer's: records
of an epoch count only until the next accepted claim, so once a claim above ours is in the log,
nothing we produce at our epoch takes effect again. The only way not to lose the newcomer's work
is for the old leader not to claim at all, which rule 3 gives.

Fencing is untouched: apply() accepts a claim only above the current epoch and ignores records
from any other epoch, so at any point of the log exactly one epoch's records take effect; ``seen``
only decides whether a displaced processor claims again, never what apply() accepts.
A forger who keeps answering this processor's claims can still make it yield, and so can one who
reads the log and names the holder's claim as seen; only the topic's ACLs stop those (docs/kafka.md).
A blind forger cannot name it (owners are random ids).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple


class Claim(NamedTuple):
    epoch: int
    owner: str


class Decision(NamedTuple):
    """What to do after a batch that held claims: start leading, stop leading, claim at an epoch."""

    lead: bool = False
    step_down: bool = False
    claim: int | None = None
    yielded_to: str | None = None  # set once, when this processor yields


@dataclass
class _PartitionClaims:
    epoch: int  # our latest claim
    answered_up_to: int  # the highest holding epoch we have reacted to
    applied: bool = False  # our latest claim has been applied (holding or refused)
    claimed_against: set[str] = field(default_factory=set)
    yielded_to: str | None = None


class Claims:
    """Per partition, the claim state machine above. Pure: the caller produces the claims."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._partitions: dict[int, _PartitionClaims] = {}

    def first(self, partition: int, stored_epoch: int) -> int:
        """The epoch to claim a partition just gained at: one above what its store holds."""
        self._partitions[partition] = _PartitionClaims(stored_epoch + 1, stored_epoch)
        return stored_epoch + 1

    def forget(self, partition: int) -> None:
        self._partitions.pop(partition, None)

    def epoch(self, partition: int) -> int | None:
        st = self._partitions.get(partition)
        return st.epoch if st is not None else None

    def yielded_to(self, partition: int) -> str | None:
        st = self._partitions.get(partition)
        return st.yielded_to if st is not None else None

    def after_batch(self, partition: int, applied: list[Claim], holder: Claim, leading: bool,
                    seen: Mapping[Claim, Claim] | None = None) -> Decision:
        """``applied``: the batch's claims, in order; ``holder``: the store's (epoch, owner) after it;
        ``seen``: for the batch's claims that say so, the claim their writer saw holding."""
        st = self._partitions[partition]
        ours = Claim(st.epoch, self.owner)
        if holder == ours:
            st.applied = True
            return Decision(lead=not leading)
        taker = _taken_over_by(ours, st.applied, applied, seen or {})
        if taker is not None:
            st.applied = True
            st.answered_up_to = max(st.answered_up_to, holder.epoch)
            if st.yielded_to is not None:
                return Decision(step_down=leading)
            st.yielded_to = taker
            return Decision(step_down=leading, yielded_to=taker)
        refused = not st.applied
        if refused:
            if (st.epoch, self.owner) not in applied:
                return Decision(step_down=leading)  # our claim is still on its way: history until then
            st.applied = True  # refused: someone holds an epoch at or above it
        if holder.epoch <= st.answered_up_to or st.yielded_to is not None:
            return Decision(step_down=leading)
        st.answered_up_to = holder.epoch
        if holder.owner in st.claimed_against:
            st.yielded_to = holder.owner
            return Decision(step_down=leading, yielded_to=holder.owner)
        # A refusal answers nothing (our claim met one made before it: a processor starting from an
        # older store claims an epoch that is taken); a claim in our own name is no one to yield to.
        if not refused and holder.owner != self.owner:
            st.claimed_against.add(holder.owner)
        st.epoch, st.applied = holder.epoch + 1, False
        return Decision(step_down=leading, claim=st.epoch)


def _taken_over_by(ours: Claim, applied_before: bool, batch: list[Claim], seen: Mapping[Claim, Claim]) -> str | None:
    """The owner of the claim that displaced ours in this batch if its writer saw ours holding, else None.

    The claim that displaced ours is the first one above it after it (apply() accepts a claim only
    above the current epoch); claims before ours in the batch are history."""
    if ours in batch:
        rest = batch[batch.index(ours) + 1:]
    elif applied_before:
        rest = batch
    else:
        return None  # ours is still on its way
    for c in rest:
        if c.epoch > ours.epoch:
            return c.owner if seen.get(c) == ours and c.owner != ours.owner else None
    return None
