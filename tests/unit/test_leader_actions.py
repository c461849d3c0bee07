"""What a partition's leader does on the event loop (partitions/leader/leader_actions.py): act on a
batch's actions, resume unfinished work when it becomes leader, stop when it steps down. Fakes stand
in for the invoker, the timer service and the shipper; the store is a real partition's (no broker)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from reprise.engine.ids import InvocationId
from reprise.partitions.core.actions import (
    AbortAttempt,
    Action,
    RunAttempt,
    ScheduleTimer,
    ShipOutbox,
    StreamNotification,
)
from reprise.partitions.leader.claims import Claim
from reprise.partitions.leader.leader_actions import LeaderActions, unfinished_work
from tests.unit.apply_helpers import N, inv_on, invoke, new_partition, output


class Fakes:
    """Records every call the leader makes, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.release_drop = asyncio.Event()  # drop_partition waits for it when ``slow_drop``
        self.slow_drop = False

    # the invoker
    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        self.calls.append(("batch",))
        yield

    def start(self, partition: int, _store: Any, epoch: int, inv: str, attempt: int) -> None:
        self.calls.append(("start", partition, epoch, inv, attempt))

    def deliver(self, inv: str, attempt: int, index: int, frame: bytes) -> None:
        self.calls.append(("deliver", inv, attempt, index))

    def abort(self, inv: str, attempt: int) -> None:
        self.calls.append(("abort", inv, attempt))

    async def drop_partition(self, partition: int) -> None:
        if self.slow_drop:
            await self.release_drop.wait()
        self.calls.append(("drop attempts", partition))



class FakeTimers:
    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls

    def schedule(self, partition: int, key: str, at: int) -> None:
        self.calls.append(("timer", partition, key, at))

    def start_partition(self, partition: int, _store: Any) -> None:
        self.calls.append(("load timers", partition))

    def drop_partition(self, partition: int) -> None:
        self.calls.append(("drop timers", partition))


class FakeShipper:
    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls

    def ship(self, partition: int, _store: Any, seq: int) -> None:
        self.calls.append(("ship", partition, seq))

    def drop_partition(self, partition: int) -> None:
        self.calls.append(("drop outbox", partition))


class Led:
    def __init__(self) -> None:
        self.leading: set[int] = set()
        self.claimed: dict[int, int] = {}


def leader(fakes: Fakes, stores: dict[int, Any], led: Led, hold_outbox: bool = False) -> LeaderActions:
    return LeaderActions(fakes, FakeTimers(fakes.calls), FakeShipper(fakes.calls),  # type: ignore[arg-type]
                         stores, led, asyncio.Event(), asyncio.get_running_loop(), hold_outbox=hold_outbox)


def test_a_new_leader_resumes_running_invocations_and_unshipped_outbox() -> None:
    p = new_partition()
    running = inv_on(0)
    invoke(p, running)
    assert unfinished_work(p.store) == [RunAttempt(running, 1)]
    other = _another_invocation(running)
    invoke(p, other)
    p.effects(other, 1, [output(b'"ok"')], {})  # completed: its reply waits in the outbox
    assert unfinished_work(p.store) == [RunAttempt(running, 1), ShipOutbox(0)]


def _another_invocation(taken: str) -> str:
    for i in range(1000):
        iid = str(InvocationId.derived(f"other{i}", "test", i))
        if iid != taken and InvocationId.parse(iid).partition(N) == 0:
            return iid
    raise AssertionError


def test_actions_are_performed_only_while_leading_and_in_one_invoker_batch() -> None:
    async def scenario() -> list[tuple[Any, ...]]:
        fakes, led = Fakes(), Led()
        actions = leader(fakes, {0: object()}, led)
        batch: list[Action] = [RunAttempt("i", 2), ScheduleTimer("t", 9), ShipOutbox(3),
                               StreamNotification("i", 2, 5, b"f"), AbortAttempt("j", 1)]
        actions.perform(0, batch)  # not leading: nothing
        led.leading.add(0)
        led.claimed[0] = 7
        actions.perform(0, batch)
        return fakes.calls

    assert asyncio.run(scenario()) == [("batch",), ("start", 0, 7, "i", 2), ("timer", 0, "t", 9), ("ship", 0, 3),
                                       ("deliver", "i", 2, 5), ("abort", "j", 1)]


def test_a_held_outbox_ships_nothing() -> None:
    async def scenario() -> list[tuple[Any, ...]]:
        fakes, led = Fakes(), Led()
        led.leading.add(0)
        led.claimed[0] = 1
        leader(fakes, {0: object()}, led, hold_outbox=True).perform(0, [ShipOutbox(0), RunAttempt("i", 1)])
        return fakes.calls

    assert asyncio.run(scenario()) == [("batch",), ("start", 0, 1, "i", 1)]


def test_becoming_leader_resumes_the_store_and_is_ready_once_every_owned_partition_is_led() -> None:
    async def scenario() -> None:
        p, idle = new_partition(), new_partition()
        inv = inv_on(0)
        invoke(p, inv)
        fakes, led = Fakes(), Led()
        actions = leader(fakes, {0: p.store, 1: idle.store}, led)
        led.leading.add(0)
        led.claimed[0] = 3
        actions.after_batch(0, True, [])
        assert fakes.calls == [("load timers", 0), ("batch",), ("start", 0, 3, inv, 1)]
        assert not actions._leader_ready.is_set()  # partition 1 is still catching up
        led.leading.add(1)
        led.claimed[1] = 1
        actions.after_batch(1, True, [])
        assert actions._leader_ready.is_set()

    asyncio.run(scenario())


def test_leading_again_waits_until_the_attempts_of_the_step_down_are_stopped() -> None:
    async def scenario() -> None:
        fakes, led = Fakes(), Led()
        p = new_partition()
        invoke(p, inv_on(0))
        actions = leader(fakes, {0: p.store}, led)
        fakes.slow_drop = True
        actions.step_down(0, Claim(5, "other"))
        assert fakes.calls == [("drop timers", 0), ("drop outbox", 0)]
        led.leading.add(0)
        led.claimed[0] = 6
        actions.after_batch(0, True, [])
        await asyncio.sleep(0)
        assert ("load timers", 0) not in fakes.calls  # the old attempts are still being stopped
        fakes.release_drop.set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert fakes.calls[2:] == [("drop attempts", 0), ("load timers", 0), ("batch",),
                                   ("start", 0, 6, inv_on(0), 1)]

    asyncio.run(scenario())


def test_releasing_a_partition_stops_its_timers_deliveries_and_attempts() -> None:
    async def scenario() -> list[tuple[Any, ...]]:
        fakes = Fakes()
        await leader(fakes, {}, Led()).release(0)
        return fakes.calls

    assert asyncio.run(scenario()) == [("drop timers", 0), ("drop outbox", 0), ("drop attempts", 0)]
