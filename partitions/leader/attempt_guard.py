"""Every attempt ends in the log: refused effects records and attempts that vanished are failed.

An effects record Kafka refuses (the attempt's only record) is replaced by a failure record of that
attempt: terminal if it was too large, else retried by the handler's policy.

The watchdog: an INVOKED invocation that no live attempt drives is run again. Every known way for an
attempt to end without its record in the log is closed where it happens (an output over a limit, a
refused record, a crash of the attempt's task). The watchdog is the net under those: the leader
looks at its partitions' INVOKED invocations every half ``bound_s``
(``REPRISE_ATTEMPT_WATCHDOG_S``), and one that has had no live attempt in this process for at least
``bound_s`` gets a failure record for that attempt (retried by its policy, like any failed attempt).

Why a failure record, not a fresh run of the same attempt: the lost attempt's records may still be
in flight (a broker outage). A record of the same attempt number applied after the failure is
dropped as stale; one applied before it makes the failure stale instead. Starting the attempt a
second time could journal two runs' steps under one attempt.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from confluent_kafka import KafkaError

from reprise.engine.limits import LIMIT_CODE
from reprise.engine.produce_burst import Delivery
from reprise.partitions.core.tables import TablesView
from reprise.partitions.core.transaction import KeyValueStore, Transaction
from reprise.partitions.invoker.invoker import Invoker
from reprise.partitions.metrics import WATCHDOG_REDRIVES

log = logging.getLogger(__name__)

_TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE})
AttemptKey = tuple[int, str, int]  # (partition, invocation id, attempt)


class AttemptWatchdog:
    """Remembers since when each INVOKED attempt has been seen without a live attempt."""

    def __init__(self, bound_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.bound_s = bound_s
        self._clock = clock
        self._unattended: dict[AttemptKey, float] = {}

    @property
    def interval_s(self) -> float:
        """How often to sweep: an unattended attempt is re-driven within 1.5 bounds."""
        return max(0.5, self.bound_s / 2)

    def sweep(self, invoked: Iterable[AttemptKey], is_live: Callable[[str, int], bool]) -> list[AttemptKey]:
        """The INVOKED attempts found now; returns those unattended for at least the bound (forgotten
        here: the caller re-drives them). An attempt seen live again starts from zero."""
        now = self._clock()
        still: dict[AttemptKey, float] = {}
        due: list[AttemptKey] = []
        for key in invoked:
            if is_live(key[1], key[2]):
                continue
            since = self._unattended.get(key, now)
            if now - since >= self.bound_s:
                due.append(key)
            else:
                still[key] = since
        self._unattended = still
        return due


def invoked_attempts(stores: Mapping[int, KeyValueStore], leading: Iterable[int],
                     live_ids: set[str]) -> Iterator[AttemptKey]:
    """The INVOKED attempts of the led partitions whose invocation has no attempt running here."""
    for partition in sorted(leading):
        store = stores.get(partition)
        if store is None:
            continue
        tables = TablesView(Transaction(store))
        for inv in tables.invocations.invoked_ids():
            if inv in live_ids:
                continue
            row = tables.invocations.get(inv)
            if row is not None and row["status"] == "INVOKED":
                yield partition, inv, row["attempt"]


class AttemptGuard:
    """The leader's side of "every attempt ends in the log": an effects record Kafka refuses becomes
    a failure record of its attempt, and the watchdog re-drives attempts nothing drives any more.

    Event-loop side, except ``delivery``'s callbacks, which the producer's poller may run anywhere.
    """

    def __init__(self, invoker: Invoker, loop: asyncio.AbstractEventLoop, stores: Mapping[int, KeyValueStore],
                 leading: set[int], claimed: Mapping[int, int], bound_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._invoker, self._loop = invoker, loop
        self._stores, self._leading, self._claimed = stores, leading, claimed
        self.watchdog = AttemptWatchdog(bound_s, clock) if bound_s > 0 else None
        self._refused: set[tuple[str, int]] = set()  # attempts whose failure record was refused as well
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self.watchdog is not None:
            self._timer = self._loop.call_later(self.watchdog.interval_s, self._sweep)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def delivery(self, partition: int, invocation_id: str, attempt: int) -> Delivery:
        """The delivery callback of one effects record."""
        return functools.partial(self._delivered, partition, invocation_id, attempt)

    def _delivered(self, partition: int, inv: str, attempt: int, err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            self._loop.call_soon_threadsafe(self._refused_record, partition, inv, attempt, err)

    def _refused_record(self, partition: int, inv: str, attempt: int, err: KafkaError) -> None:
        store, epoch = self._stores.get(partition), self._claimed.get(partition)
        if partition not in self._leading or store is None or epoch is None:
            return  # the partition moved on: its new leader runs the attempt again
        if (inv, attempt) in self._refused:
            log.error("the failure record of %s attempt %d was refused too (%s); the watchdog retries it",
                      inv, attempt, err)
            return
        if len(self._refused) > 10_000:  # only ever grows with refusals; the watchdog covers any forgotten
            self._refused.clear()
        self._refused.add((inv, attempt))
        too_large = err.code() in _TOO_LARGE
        message = f"Kafka refused the record of attempt {attempt}: {err.str()}"
        log.error("%s: %s", inv, message)
        self._invoker.fail_attempt(partition, store, epoch, inv, attempt, LIMIT_CODE if too_large else 500,
                                   message, retryable=not too_large)

    def _sweep(self) -> None:
        assert self.watchdog is not None
        try:
            live_ids = self._invoker.live_invocations()
            due = self.watchdog.sweep(invoked_attempts(self._stores, list(self._leading), live_ids),
                                      self._invoker.is_live)
            for partition, inv, attempt in due:
                store, epoch = self._stores.get(partition), self._claimed.get(partition)
                if partition not in self._leading or store is None or epoch is None:
                    continue
                self._refused.discard((inv, attempt))
                log.warning("%s: attempt %d has had no live attempt for %.0f s; failing it so it runs again",
                            inv, attempt, self.watchdog.bound_s)
                WATCHDOG_REDRIVES.inc()
                self._invoker.fail_attempt(
                    partition, store, epoch, inv, attempt, 500,
                    f"attempt {attempt} ended without a record in the log (no live attempt for "
                    f"{self.watchdog.bound_s:g} s, REPRISE_ATTEMPT_WATCHDOG_S)")
        except Exception:  # noqa: BLE001 - a store closed under the sweep (a partition moved): next time
            log.exception("attempt watchdog sweep failed")
        self._timer = self._loop.call_later(self.watchdog.interval_s, self._sweep)
