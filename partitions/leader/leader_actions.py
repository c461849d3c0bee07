"""What a partition's leader does with apply()'s actions: run attempts, schedule timers, ship the
outbox; and what it does when it starts or stops leading.

Runs on the event loop only: the apply thread hands each batch's actions over with
``call_soon_threadsafe``. Becoming leader resumes everything the store says is unfinished; stepping
down (or losing the partition) stops it all at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol

from reprise.partitions.core.actions import (
    AbortAttempt,
    Action,
    RunAttempt,
    ScheduleTimer,
    ShipOutbox,
    StreamNotification,
)
from reprise.partitions.core.tables import TablesView
from reprise.partitions.core.transaction import KeyValueStore, Transaction
from reprise.partitions.invoker.invoker import Invoker
from reprise.partitions.leader.claims import Claim
from reprise.partitions.leader.shipper import OutboxShipper
from reprise.partitions.leader.timers import TimerService

log = logging.getLogger(__name__)


class Led(Protocol):
    """Which partitions this process leads, and at which epoch it claimed each (Leadership)."""

    leading: set[int]
    claimed: dict[int, int]


def unfinished_work(store: KeyValueStore) -> list[Action]:
    """What a new leader resumes from the store: an attempt for every invocation that was running,
    and a delivery for every unshipped outbox entry (timers are loaded by the timer service)."""
    tables = TablesView(Transaction(store))
    actions: list[Action] = []
    for inv in tables.invocations.invoked_ids():
        row = tables.invocations.get(inv)
        if row is not None:
            actions.append(RunAttempt(inv, row["attempt"]))
    actions.extend(ShipOutbox(seq) for seq in tables.outbox.pending())
    return actions


class LeaderActions:
    """Performs the actions of the partitions this process leads."""

    def __init__(self, invoker: Invoker, timers: TimerService, shipper: OutboxShipper,
                 stores: Mapping[int, KeyValueStore], led: Led, leader_ready: asyncio.Event,
                 loop: asyncio.AbstractEventLoop, hold_outbox: bool = False) -> None:
        """``hold_outbox``: fault injection for tests, as if the process died after committing a batch
        and before shipping its outbox. Never set in production."""
        self.invoker, self.timers, self.shipper = invoker, timers, shipper
        self._stores, self._led, self._leader_ready, self._loop = stores, led, leader_ready, loop
        self._hold_outbox = hold_outbox
        self._dropping: dict[int, asyncio.Task[None]] = {}  # a stepped-down partition's attempts being stopped

    def after_batch(self, partition: int, became_leader: bool, actions: list[Action]) -> None:
        """A batch was applied while leading: resume everything if it made us leader, else act on it."""
        if became_leader:
            dropping = self._dropping.pop(partition, None)
            if dropping is not None and not dropping.done():  # its old attempts first, or start() skips them
                dropping.add_done_callback(lambda _t: self.become_leader(partition)
                                           if partition in self._led.leading else None)
            else:
                self.become_leader(partition)
        else:
            self.perform(partition, actions)

    def become_leader(self, partition: int) -> None:
        """Resume everything left unfinished: running attempts, pending timers, unshipped outbox."""
        store = self._stores[partition]
        actions = unfinished_work(store)
        self.timers.start_partition(partition, store)
        log.info("partition %d: leader at epoch %d; resuming %d actions", partition,
                 self._led.claimed[partition], len(actions))
        self.perform(partition, actions)
        if self._led.leading.issuperset(self._stores):
            self._leader_ready.set()

    def perform(self, partition: int, actions: list[Action]) -> None:
        if partition not in self._led.leading:
            return
        store = self._stores[partition]
        with self.invoker.batch():  # the batch's sends to services leave together (Invoker.batch)
            for a in actions:
                if isinstance(a, StreamNotification):
                    self.invoker.deliver(a.invocation_id, a.attempt, a.index, a.frame)
                elif isinstance(a, RunAttempt):
                    self.invoker.start(partition, store, self._led.claimed[partition], a.invocation_id, a.attempt)
                elif isinstance(a, ScheduleTimer):
                    self.timers.schedule(partition, a.timer_key, a.fire_at_ms)
                elif isinstance(a, ShipOutbox) and not self._hold_outbox:
                    self.shipper.ship(partition, store, a.seq)
                elif isinstance(a, AbortAttempt):
                    self.invoker.abort(a.invocation_id, a.attempt)

    def step_down(self, partition: int, holder: Claim) -> None:
        """Stop acting at once: timers, outbox, and the attempts, whose effects carry our old epoch
        (apply() ignores them now) and which a later leadership of ours must be able to start again."""
        log.warning("partition %d: epoch %d of %s is newer than ours; stepping down", partition, holder.epoch,
                    holder.owner)
        self.timers.drop_partition(partition)
        self.shipper.drop_partition(partition)
        self._dropping[partition] = self._loop.create_task(self.invoker.drop_partition(partition))

    async def release(self, partition: int) -> None:
        """The partition is no longer owned: stop its timers, deliveries and attempts."""
        self.timers.drop_partition(partition)
        self.shipper.drop_partition(partition)
        await self.invoker.drop_partition(partition)
