"""LoopDeliveries: delivery reports served on the event loop, polled only while some are outstanding."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from reprise.engine.kafka import LoopDeliveries

Runner = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Runs a scenario on asyncio's loop or on uvloop (the engine's; its timers differ: a deadline under
    a millisecond away gives a plain Handle)."""
    if request.param == "asyncio":
        return asyncio.run

    def on_uvloop(coro: Coroutine[Any, Any, Any]) -> Any:
        loop = uvloop.new_event_loop()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.close()

    return on_uvloop


class FakeProducer:
    """A producer whose records are acknowledged after ``latency`` polls each."""

    def __init__(self, latency: int) -> None:
        self.latency = latency
        self.outstanding: list[list] = []  # [polls left, callback]
        self.polls = 0
        self.flushed = False

    def produce(self, callback: Callable[[None, None], None], latency: int | None = None) -> None:
        self.outstanding.append([self.latency if latency is None else latency, callback])

    def __len__(self) -> int:
        return len(self.outstanding)

    def poll(self, _timeout: float) -> int:
        self.polls += 1
        for entry in self.outstanding:
            entry[0] -= 1
        done = [e for e in self.outstanding if e[0] <= 0]
        self.outstanding = [e for e in self.outstanding if e[0] > 0]
        for _, callback in done:
            callback(None, None)
        return len(done)

    def flush(self, _timeout: float) -> int:
        self.flushed = True
        while self.outstanding:
            self.poll(0)
        return 0


def test_reports_are_served_on_the_loop_and_polling_stops_when_none_is_outstanding(run: Runner) -> None:
    async def scenario() -> tuple[list[int], int, int, int]:
        producer = FakeProducer(latency=3)  # 0.1 ms: uvloop schedules that as a plain Handle (no when())
        deliveries = LoopDeliveries(producer, asyncio.get_running_loop(), interval_s=0.0001)
        served_on: list[int] = []
        for _ in range(2):
            producer.produce(deliveries.track(lambda _e, _m: served_on.append(threading.get_ident()), True))
            deliveries.produced(True)
        for _ in range(2000):  # bounded: a pump that stopped early fails the test, not hangs it
            if not producer.outstanding:
                break
            await asyncio.sleep(0.001)
        polls_when_done = producer.polls
        await asyncio.sleep(0.05)  # nothing outstanding: no more polls (the idle poll is 1 s away)
        polls_later = producer.polls
        deliveries.close()
        return served_on, polls_when_done, polls_later, threading.get_ident()

    served_on, polls_when_done, polls_later, loop_thread = run(scenario())
    assert served_on == [loop_thread, loop_thread]  # both acknowledged, on the loop's thread
    assert polls_when_done == 3  # one timer chain for both records, not one per record
    assert polls_later == polls_when_done


def test_close_delivers_what_is_outstanding_and_stops_polling(run: Runner) -> None:
    async def scenario() -> tuple[FakeProducer, list[str], int]:
        producer = FakeProducer(latency=1000)
        deliveries = LoopDeliveries(producer, asyncio.get_running_loop(), interval_s=0.001)
        served: list[str] = []
        producer.produce(deliveries.track(lambda _e, _m: served.append("x"), True))
        deliveries.produced(True)
        deliveries.close()
        polls = producer.polls
        await asyncio.sleep(0.02)
        return producer, served, producer.polls - polls

    producer, served, polls_after_close = run(scenario())
    assert producer.flushed and served == ["x"]
    assert polls_after_close == 0


def test_reports_nobody_awaits_are_polled_at_the_relaxed_pace_until_an_awaited_one_comes(run: Runner) -> None:
    async def scenario() -> tuple[int, int, int, list[str], list[str]]:
        producer = FakeProducer(latency=2)
        deliveries = LoopDeliveries(producer, asyncio.get_running_loop(), interval_s=0.001, relaxed_s=10.0)
        served: list[str] = []
        producer.produce(deliveries.track(lambda _e, _m: served.append("call"), False), latency=5)
        deliveries.produced(False)
        await asyncio.sleep(0.02)
        polls_call_only = producer.polls  # its tick is 10 s away
        producer.produce(deliveries.track(lambda _e, _m: served.append("send"), True))
        deliveries.produced(True)  # pulls the tick in
        for _ in range(2000):
            if served:
                break
            await asyncio.sleep(0.001)
        polls_for_send = producer.polls
        await asyncio.sleep(0.02)
        polls_after = producer.polls  # the call is still outstanding, nobody awaits it: relaxed again
        before_close = list(served)
        deliveries.close()
        return polls_call_only, polls_for_send, polls_after, before_close, served

    polls_call_only, polls_for_send, polls_after, before_close, served = run(scenario())
    assert polls_call_only == 0
    assert polls_for_send == 2 and before_close == ["send"]
    assert polls_after == 2
    assert served == ["send", "call"]  # close() still delivers it
