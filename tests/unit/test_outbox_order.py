"""partitions/leader/shipper.py under delivery failures: no entry is reported shipped before it was
delivered, and none reaches its receiver behind a later entry to the same receiver (whose high-water
dedup would then drop it as a copy). A fake producer fails chosen entries; fake receivers apply the
real dedup table (Tables.seen); OutboxShipped truncates the real outbox table."""

from __future__ import annotations

import asyncio
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from reprise.engine.config import Config
from reprise.engine.produce_burst import ProduceBurst
from reprise.partitions.core.memory_store import MemoryStore
from reprise.partitions.core.tables import Tables
from reprise.partitions.core.transaction import Transaction
from reprise.partitions.leader.shipper import OutboxShipper
from reprise.schemas import codec

SOURCE = 0
FAILURE = KafkaError(KafkaError._MSG_TIMED_OUT, "injected")


class FakeKafka:
    """A producer whose records reach the receivers in produce order when ``settle`` runs. A seq in
    ``refuse`` is refused at produce() once; one in ``fail`` is accepted, then reported failed once."""

    def __init__(self, refuse: set[int], fail: set[int]) -> None:
        self.refuse, self.fail = set(refuse), set(fail)
        self.queued: list[tuple[int, int, Any]] = []
        self.receivers: dict[int, MemoryStore] = {}
        self.applied: dict[int, list[int]] = {}  # receiver partition -> seqs it applied, in order
        self.dropped: list[int] = []

    def produce(self, topic: str, **kw: Any) -> None:
        kind, version = codec.kind_of(kw["headers"])
        seq = codec.decode(kind, version, kw["value"])["source"]["seq"]
        if seq in self.refuse:
            self.refuse.discard(seq)
            raise KafkaException(FAILURE)
        self.queued.append((kw.get("partition", REPLIES), seq, kw["on_delivery"]))

    def poll(self, _timeout: float) -> None:
        pass

    def settle(self) -> None:
        queued, self.queued = self.queued, []
        for partition, seq, on_delivery in queued:
            if seq in self.fail:
                self.fail.discard(seq)
                on_delivery(FAILURE, None)
                continue
            tx = Transaction(self.receivers.setdefault(partition, MemoryStore()))
            if partition != REPLIES and Tables(tx).dedup.seen(SOURCE, seq):
                self.dropped.append(seq)
            else:
                self.applied.setdefault(partition, []).append(seq)
            tx.commit(None)
            on_delivery(None, None)


def signal(seq: int) -> bytes:
    return codec.encode("Signal", {"invocation_id": f"inv{seq}", "idx": 17, "name": None, "value": b"v",
                                   "failure": None, "source": {"partition": SOURCE, "seq": seq}})


def reply(seq: int) -> bytes:
    return codec.encode("Reply", {"ingress_id": "elsewhere", "request_id": f"r{seq}", "invocation_id": f"inv{seq}",
                                  "value": b"v", "failure": None, "source": {"partition": SOURCE, "seq": seq}})


REPLIES = -1


def run_shipper(destinations: list[int], refuse: set[int] = frozenset(), fail: set[int] = frozenset(),
                ) -> tuple[FakeKafka, list[tuple[int, bool]], MemoryStore]:
    """Ship one entry per destination in turn, a few per loop turn, until every entry is reported
    shipped. Returns the fake, each report with whether every entry it covers had been delivered,
    and the source store."""
    store = MemoryStore()
    tx = Transaction(store)
    for dest in destinations:
        if dest == REPLIES:
            Tables(tx).outbox.append("replies", -1, "Reply", reply)
        else:
            Tables(tx).outbox.append("log", dest, "Signal", signal)
    tx.commit(None)
    kafka = FakeKafka(set(refuse), set(fail))
    reports: list[tuple[int, bool]] = []

    def shipped(_partition: int, up_to: int) -> None:
        delivered = {s for seqs in kafka.applied.values() for s in seqs}
        reports.append((up_to, all(s in delivered for s in range(up_to + 1))))
        t = Transaction(store)
        Tables(t).outbox.truncate(up_to)  # what apply() does with OutboxShipped
        t.commit(None)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        shipper = OutboxShipper(Config(), ProduceBurst(kafka, loop), loop, shipped,  # type: ignore[arg-type]
                                report_interval_s=0.01)
        for start in range(0, len(destinations), 3):
            for seq in range(start, min(start + 3, len(destinations))):
                shipper.ship(SOURCE, store, seq)
            await asyncio.sleep(0)  # the burst goes out
            kafka.settle()
            await asyncio.sleep(0.02)
        for _ in range(300):
            if reports and reports[-1][0] == len(destinations) - 1:
                return
            kafka.settle()
            await asyncio.sleep(0.02)

    asyncio.run(main())
    return kafka, reports, store


def assert_no_loss(kafka: FakeKafka, reports: list[tuple[int, bool]], destinations: list[int]) -> None:
    assert reports and reports[-1][0] == len(destinations) - 1, reports
    assert all(ok for _, ok in reports), f"an entry was reported shipped before it was delivered: {reports}"
    assert kafka.dropped == [], f"entries dropped by the receiver's dedup: {kafka.dropped}"
    for dest in set(destinations):
        wanted = [s for s, d in enumerate(destinations) if d == dest]
        assert kafka.applied.get(dest) == wanted, (dest, kafka.applied.get(dest))


DESTS = [1, 2, 1, 1, 2, 1, 2, 1, 1, 2, 1, 1]  # seq -> receiving log partition


def test_an_entry_refused_by_the_producer_is_retried_before_later_entries_to_its_receiver() -> None:
    kafka, reports, _ = run_shipper(DESTS, refuse={3})
    assert_no_loss(kafka, reports, DESTS)


def test_an_entry_whose_delivery_failed_is_retried_before_later_entries_to_its_receiver() -> None:
    kafka, reports, _ = run_shipper(DESTS, fail={2})
    assert_no_loss(kafka, reports, DESTS)


def test_repeated_failures_on_two_receivers() -> None:
    kafka, reports, store = run_shipper(DESTS, refuse={0, 4}, fail={5, 9})
    assert_no_loss(kafka, reports, DESTS)
    assert Tables(Transaction(store)).outbox.pending() == []


def test_without_failures_every_entry_is_delivered_in_order_and_reported() -> None:
    kafka, reports, _ = run_shipper(DESTS)
    assert_no_loss(kafka, reports, DESTS)


def test_a_failed_reply_is_retried_alone_and_holds_no_later_reply() -> None:
    dests = [REPLIES, 1, REPLIES, REPLIES, 2, REPLIES, REPLIES, 1, REPLIES]
    kafka, reports, _ = run_shipper(dests, fail={2})
    assert reports[-1][0] == len(dests) - 1 and all(ok for _, ok in reports), reports
    replies = kafka.applied[REPLIES]  # a reply topic dedups nothing: order among replies is free
    assert sorted(replies) == [0, 2, 3, 5, 6, 8] and replies.index(3) < replies.index(2)


def test_entries_in_flight_behind_a_failing_one_do_not_overtake_it() -> None:
    """Three entries to one receiver go out in one turn and the first one's batch fails while the
    later ones land: the receiver's high-water would then drop the first when it is re-sent."""
    dests = [1, 1, 1, 2, 1]
    kafka, reports, _ = run_shipper(dests, fail={0})
    assert_no_loss(kafka, reports, dests)


def test_a_failure_behind_a_failure_on_two_receivers_in_one_turn() -> None:
    dests = [1, 2, 1, 2, 1, 2, 1, 2]
    kafka, reports, _ = run_shipper(dests, fail={0, 3, 4})
    assert_no_loss(kafka, reports, dests)
