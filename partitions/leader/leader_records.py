"""The records a partition's leader writes to its own log, each stamped with the epoch it claimed:
an attempt's effects, a fired timer, the outbox's progress, a retention sweep.

apply() ignores such a record unless its epoch is the partition's current one (fencing), so a
deposed leader's late records take no effect. Why a record did not reach the log matters for some:
a refused effects record becomes a failure of its attempt (AttemptGuard); a refused TimerFired is
fired again, since the timer left memory when it fired and would otherwise wait for a new leader.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from confluent_kafka import KafkaError, Message

from reprise.engine import faults
from reprise.engine.clock import now_ms
from reprise.engine.produce_burst import ProduceBurst
from reprise.partitions.invoker.attempt_output import tagged_outcome
from reprise.partitions.leader.attempt_guard import AttemptGuard
from reprise.partitions.leader.timers import TimerService

log = logging.getLogger(__name__)

SWEEP_LIMIT = 5_000  # invocations one RetentionSweep record forgets at most (the next sweep takes the rest)


class LeaderRecords:
    """Writes the leader's records for the partitions in ``leading``, at the epochs in ``claimed``."""

    def __init__(self, log_topic: str, burst: ProduceBurst, loop: asyncio.AbstractEventLoop, leading: set[int],
                 claimed: dict[int, int]) -> None:
        self._topic, self._burst, self._loop = log_topic, burst, loop
        self._leading, self._claimed = leading, claimed
        self.attempts: AttemptGuard | None = None  # wired by the processor: they need each other
        self.timers: TimerService | None = None
        # Fault injection for tests: lose this many effects records, as if their attempts vanished
        # (REPRISE_FAULT_LOSE_EFFECTS=n). Never set in production.
        self._lose_effects = int(os.environ.get("REPRISE_FAULT_LOSE_EFFECTS", "0"))

    def effects(self, partition: int, effects: dict[str, Any]) -> None:
        """An attempt's journal entries and outcome (the invoker's sink)."""
        if partition not in self._leading:
            return  # the partition moved on; the new leader runs the attempt again
        if self._lose_effects > 0:
            self._lose_effects -= 1
            return
        assert self.attempts is not None
        effects["outcome"] = tagged_outcome(effects["outcome"])
        refused = self.attempts.delivery(partition, effects["invocation_id"], effects["attempt"])
        self._burst.produce_record(self._topic, partition, "InvokerEffects", effects, on_delivery=refused)

    def timer_fired(self, partition: int, timer_key: str) -> None:
        """A durable timer is due (the timer service's sink)."""
        if partition not in self._leading:
            return

        def delivered(err: KafkaError | None, _msg: Message | None) -> None:
            if err is not None:  # the timer left memory when it fired: arm it again, or it waits for a new leader
                log.warning("partition %d: timer %s not fired (%s); firing again", partition, timer_key, err)
                assert self.timers is not None
                self._loop.call_soon_threadsafe(self.timers.refire, partition, timer_key)

        if faults.fail_point("timer-fired"):  # tests only: as if Kafka refused the record
            self._loop.call_later(faults.FAILURE_REPORT_S, delivered, KafkaError(KafkaError._FAIL, "injected"), None)
            return
        self._burst.produce_record(self._topic, partition, "TimerFired", {
            "timer_key": timer_key, "epoch": self._claimed[partition], "timestamp_ms": now_ms()},
            on_delivery=delivered)

    def outbox_shipped(self, partition: int, up_to: int) -> None:
        """Every outbox entry up to ``up_to`` reached its destination (the shipper's sink)."""
        if partition in self._leading:
            self._burst.produce_record(self._topic, partition, "OutboxShipped", {
                "epoch": self._claimed[partition], "up_to_seq": up_to})

    def retention_sweep(self, partition: int, before_ms: int) -> None:
        """Forget completions older than ``before_ms`` (up to SWEEP_LIMIT of them)."""
        if partition in self._leading:
            self._burst.produce_record(self._topic, partition, "RetentionSweep", {
                "epoch": self._claimed[partition], "before_ms": before_ms, "limit": SWEEP_LIMIT})
