"""The leader side of fencing (partitions/leader/claims.py), driven by claim sequences alone.

``Log`` plays the partition: it accepts a claim only above the current epoch, as apply() does, and
hands each processor the records it has not seen yet, one batch at a time.
"""

from __future__ import annotations

from reprise.partitions.leader.claims import Claim, Claims, Decision


class Log:
    def __init__(self, epoch: int = 0) -> None:
        self.records: list[Claim] = []
        self.seen: dict[Claim, Claim] = {}  # what a (v2) claim's writer saw holding
        self.holder = Claim(epoch, "")
        self.holders: list[Claim] = []  # the holder after each record

    def append(self, claim: Claim, seen: Claim | None = None) -> None:
        self.records.append(claim)
        if seen is not None:
            self.seen[claim] = seen
        if claim.epoch > self.holder.epoch:
            self.holder = claim
        self.holders.append(self.holder)


class Processor:
    """A processor's claims and what it did, reading the log from where it started."""

    def __init__(self, name: str, log: Log, stored: Claim | None = None, cursor: int | None = None,
                 v1: bool = False) -> None:
        """``stored``/``cursor``: a store behind the log (at that holder, that many records applied);
        ``v1``: its claims do not say what they saw (an older processor)."""
        self.claims, self.log, self.name, self.v1 = Claims(name), log, name, v1
        self.cursor = len(log.records) if cursor is None else cursor
        self.leading = False
        held = stored or log.holder
        self.claim(self.claims.first(0, held.epoch), held)

    def claim(self, epoch: int, seen: Claim) -> None:
        self.log.append(Claim(epoch, self.name), None if self.v1 else seen)

    def step(self) -> Decision | None:
        """Apply what the log holds beyond the cursor as one batch; act on the decision."""
        if self.cursor == len(self.log.records):
            return None
        batch, holder = self.log.records[self.cursor:], self.log.holders[-1]
        self.cursor = len(self.log.records)
        d = self.claims.after_batch(0, batch, holder, self.leading, self.log.seen)
        if d.step_down:
            self.leading = False
        if d.lead:
            self.leading = True
        if d.claim is not None:
            self.claim(d.claim, holder)
        return d


def test_its_own_claim_holding_makes_it_lead() -> None:
    log = Log(4)
    p = Processor("me", log)
    assert log.records == [Claim(5, "me")]
    assert p.step() == Decision(lead=True) and p.leading


def test_a_forged_higher_claim_makes_the_leader_step_down_and_claim_again_above_it() -> None:
    log = Log()
    p = Processor("me", log)
    p.step()
    log.append(Claim(7, "forger"))
    assert p.step() == Decision(step_down=True, claim=8) and not p.leading
    assert p.step() == Decision(lead=True) and p.leading and log.holder == Claim(8, "me")


def test_claims_before_its_own_are_history() -> None:
    """A processor catching up sees old claims of others before its own: no answer to those."""
    claims = Claims("me")
    assert claims.first(0, 0) == 1  # its store is at epoch 0; the log beyond it holds two claims, then ours
    assert claims.after_batch(0, [Claim(1, "old"), Claim(2, "other")], Claim(2, "other"), False) == Decision()
    # its own claim comes back refused: it claims above what holds
    assert claims.after_batch(0, [Claim(1, "me")], Claim(2, "other"), False) == Decision(claim=3)


def test_a_stale_claim_arriving_late_does_not_stop_the_partition() -> None:
    log = Log()
    p = Processor("me", log)
    p.step()
    for stale in ("gone-1", "gone-2", "gone-3"):  # each a different owner that never answers
        log.append(Claim(log.holder.epoch + 1, stale))
        expected = log.holder.epoch + 1
        assert p.step().claim == expected
        assert p.step() == Decision(lead=True)


def test_a_woken_old_leader_yields_to_the_takeover_at_once() -> None:
    """The newcomer's claim names the old leader's as the one it saw: the old one steps down and
    yields without a claim of its own, so the newcomer never steps down (its attempts run on)."""
    log = Log()
    zombie = Processor("zombie", log)
    zombie.step()
    new = Processor("new", log)  # claims while the zombie is frozen
    new.step()
    assert new.leading
    assert zombie.step() == Decision(step_down=True, yielded_to="new")
    assert new.step() is None  # nothing new on the log: it never stepped down
    for _ in range(20):
        zombie.step()
        new.step()
    assert new.leading and not zombie.leading
    assert log.records == [Claim(1, "zombie"), Claim(2, "new")]


def test_two_live_processors_whose_claims_do_not_say_what_they_saw_settle_in_two_rounds() -> None:
    log = Log()
    zombie = Processor("zombie", log, v1=True)
    zombie.step()
    new = Processor("new", log, v1=True)
    new.step()
    assert new.leading
    for _ in range(20):  # the zombie wakes up; both read the log in turns
        zombie.step()
        new.step()
    assert new.leading and not zombie.leading
    assert log.holder.owner == "new" and len(log.records) == 4  # zombie, new, zombie again, new again
    assert zombie.claims.yielded_to(0) == "new"


def test_after_a_takeover_from_a_stale_store_the_newcomer_keeps_the_partition() -> None:
    """The newcomer's first claim is refused (its store is behind), so it claims above what holds,
    naming it; the frozen old leader wakes and yields at once."""
    log = Log()
    old = Processor("old", log)
    old.step()
    new = Processor("new", log, stored=Claim(0, ""), cursor=0)  # claims 1: taken already
    for _ in range(3):
        new.step()
    assert new.leading and log.holder == Claim(2, "new")
    for _ in range(20):
        old.step()
        new.step()
    assert new.leading and not old.leading and old.claims.yielded_to(0) == "new"
    assert [c.owner for c in log.records] == ["old", "new", "new"]


def test_a_claim_that_saw_another_claim_is_answered() -> None:
    """Naming a claim that is not ours (a stale or forged record) is no takeover of ours."""
    log = Log()
    p = Processor("me", log)
    p.step()
    log.append(Claim(2, "x"), seen=Claim(0, ""))
    assert p.step() == Decision(step_down=True, claim=3)
    assert p.step() == Decision(lead=True)
    log.append(Claim(5, "y"), seen=Claim(1, "me"))  # names our older claim, not the holding one
    assert p.step() == Decision(step_down=True, claim=6)
    assert p.step() == Decision(lead=True)


def test_only_the_claim_that_displaced_ours_can_be_a_takeover() -> None:
    """A claim naming ours that apply() refused (another displaced ours first) is no takeover."""
    log = Log()
    p = Processor("me", log)
    p.step()
    log.append(Claim(2, "x"))
    log.append(Claim(2, "y"), seen=Claim(1, "me"))  # refused: 2 holds already
    assert p.step() == Decision(step_down=True, claim=3)


def test_a_takeover_in_the_batch_of_our_own_claim_is_seen() -> None:
    """Our claim and the claim that took over from it applied in one batch: we yield."""
    claims = Claims("me")
    assert claims.first(0, 4) == 5
    batch = [Claim(5, "me"), Claim(6, "new")]
    assert claims.after_batch(0, batch, Claim(6, "new"), False, {Claim(6, "new"): Claim(5, "me")}) == \
        Decision(yielded_to="new")


def test_a_takeover_in_our_own_name_is_not_yielded_to() -> None:
    log = Log()
    p = Processor("me", log)
    p.step()
    log.append(Claim(2, "me"), seen=Claim(1, "me"))  # forged with our name
    assert p.step() == Decision(step_down=True, claim=3)


def test_at_most_one_processor_holds_at_any_point_of_the_log() -> None:
    """Whatever the interleaving, each record leaves one holder, and only it may lead after applying it."""
    log = Log()
    a, b = Processor("a", log), Processor("b", log)
    for turn in range(40):
        (a if turn % 3 else b).step()
        for p in (a, b):
            if p.leading:
                assert log.holders[p.cursor - 1].owner == p.name
    assert a.leading != b.leading


def test_a_claim_in_its_own_name_is_answered_but_never_yielded_to() -> None:
    log = Log()
    p = Processor("me", log)
    p.step()
    log.append(Claim(5, "me"))  # forged with our owner name
    assert p.step() == Decision(step_down=True, claim=6)
    assert p.step() == Decision(lead=True)
    log.append(Claim(9, "me"))
    assert p.step() == Decision(step_down=True, claim=10)


def test_once_yielded_it_stays_out() -> None:
    log = Log()
    p = Processor("me", log)
    p.step()
    log.append(Claim(2, "x"))
    p.step()
    log.append(Claim(4, "x"))  # x answered our claim: a live processor
    assert p.step() == Decision(yielded_to="x")
    log.append(Claim(5, "y"))
    assert p.step() == Decision() and not p.leading


def test_a_partition_gained_again_starts_afresh() -> None:
    log = Log()
    p = Processor("me", log)
    p.step()
    log.append(Claim(2, "x"))
    p.step()
    log.append(Claim(4, "x"))
    p.step()
    p.claims.forget(0)
    assert p.claims.first(0, log.holder.epoch) == 5 and p.claims.yielded_to(0) is None
