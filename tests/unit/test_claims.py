"""The leader side of fencing (partitions/leader/claims.py), driven by claim sequences alone.

``Log`` plays the partition: it accepts a claim only above the current epoch, as apply() does, and
hands each processor the records it has not seen yet, one batch at a time.
"""

from __future__ import annotations

from reprise.partitions.leader.claims import Claim, Claims, Decision


class Log:
    def __init__(self, epoch: int = 0) -> None:
        self.records: list[Claim] = []
        self.holder = Claim(epoch, "")
        self.holders: list[Claim] = []  # the holder after each record

    def append(self, claim: Claim) -> None:
        self.records.append(claim)
        if claim.epoch > self.holder.epoch:
            self.holder = claim
        self.holders.append(self.holder)


class Processor:
    """A processor's claims and what it did, reading the log from where it started."""

    def __init__(self, name: str, log: Log, stored: Claim | None = None, cursor: int | None = None) -> None:
        """``stored``/``cursor``: a store behind the log (at that holder, that many records applied)."""
        self.claims, self.log, self.name = Claims(name), log, name
        self.cursor = len(log.records) if cursor is None else cursor
        self.leading = False
        self.log.append(Claim(self.claims.first(0, (stored or log.holder).epoch), name))

    def step(self) -> Decision | None:
        """Apply what the log holds beyond the cursor as one batch; act on the decision."""
        if self.cursor == len(self.log.records):
            return None
        batch, holder = self.log.records[self.cursor:], self.log.holders[-1]
        self.cursor = len(self.log.records)
        d = self.claims.after_batch(0, batch, holder, self.leading)
        if d.step_down:
            self.leading = False
        if d.lead:
            self.leading = True
        if d.claim is not None:
            self.log.append(Claim(d.claim, self.name))
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


def test_two_live_processors_settle_on_one_leader_in_two_rounds() -> None:
    log = Log()
    zombie = Processor("zombie", log)
    zombie.step()
    new = Processor("new", log)  # claims while the zombie is frozen
    new.step()
    assert new.leading
    for _ in range(20):  # the zombie wakes up; both read the log in turns
        zombie.step()
        new.step()
    assert new.leading and not zombie.leading
    assert log.holder.owner == "new" and len(log.records) == 4  # zombie, new, zombie again, new again
    assert zombie.claims.yielded_to(0) == "new"


def test_after_a_takeover_from_a_stale_store_the_newcomer_keeps_the_partition() -> None:
    """The newcomer's first claim is refused (its store is behind), so it claims above; the frozen
    old leader wakes, claims against it once, the newcomer answers, and the old one yields."""
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
    assert [c.owner for c in log.records] == ["old", "new", "new", "old", "new"]


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
