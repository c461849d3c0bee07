"""LoopDeliveries: delivery reports served on the event loop, polled only while some are outstanding."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from engine.kafka import LoopDeliveries


class FakeProducer:
    """A producer whose records are acknowledged after ``latency`` polls each."""

    def __init__(self, latency: int) -> None:
        self.latency = latency
        self.outstanding: list[list] = []  # [polls left, callback]
        self.polls = 0
        self.flushed = False

    def produce(self, callback: Callable[[], None]) -> None:
        self.outstanding.append([self.latency, callback])

    def __len__(self) -> int:
        return len(self.outstanding)

    def poll(self, _timeout: float) -> int:
        self.polls += 1
        for entry in self.outstanding:
            entry[0] -= 1
        done = [e for e in self.outstanding if e[0] <= 0]
        self.outstanding = [e for e in self.outstanding if e[0] > 0]
        for _, callback in done:
            callback()
        return len(done)

    def flush(self, _timeout: float) -> int:
        self.flushed = True
        while self.outstanding:
            self.poll(0)
        return 0


def test_reports_are_served_on_the_loop_and_polling_stops_when_none_is_outstanding() -> None:
    async def scenario() -> tuple[list[int], int, int, int]:
        producer = FakeProducer(latency=3)
        deliveries = LoopDeliveries(producer, asyncio.get_running_loop(), interval_s=0.001)
        served_on: list[int] = []
        for _ in range(2):
            producer.produce(lambda: served_on.append(threading.get_ident()))
            deliveries.produced()
        for _ in range(2000):  # bounded: a pump that stopped early fails the test, not hangs it
            if not producer.outstanding:
                break
            await asyncio.sleep(0.001)
        polls_when_done = producer.polls
        await asyncio.sleep(0.05)  # nothing outstanding: no more polls (the idle poll is 1 s away)
        polls_later = producer.polls
        deliveries.close()
        return served_on, polls_when_done, polls_later, threading.get_ident()

    served_on, polls_when_done, polls_later, loop_thread = asyncio.run(scenario())
    assert served_on == [loop_thread, loop_thread]  # both acknowledged, on the loop's thread
    assert polls_when_done == 3  # one timer chain for both records, not one per record
    assert polls_later == polls_when_done


def test_close_delivers_what_is_outstanding_and_stops_polling() -> None:
    async def scenario() -> tuple[FakeProducer, list[str], int]:
        producer = FakeProducer(latency=1000)
        deliveries = LoopDeliveries(producer, asyncio.get_running_loop(), interval_s=0.001)
        served: list[str] = []
        producer.produce(lambda: served.append("x"))
        deliveries.produced()
        deliveries.close()
        polls = producer.polls
        await asyncio.sleep(0.02)
        return producer, served, producer.polls - polls

    producer, served, polls_after_close = asyncio.run(scenario())
    assert producer.flushed and served == ["x"]
    assert polls_after_close == 0
