"""Restate's inactivity and abort timeouts on each attempt, at O(1) per message.

* **Inactivity timeout.** A streaming attempt (BIDI_STREAM) that has exchanged no message with its
  service (either way) for this long is asked to suspend: its request body is closed, so the SDK
  suspends at the first result it lacks and keeps the progress it journaled. 0 runs the handler's
  attempts request/response (as in Restate).
* **Abort timeout.** Once an attempt's input is closed (asked to suspend, or request/response, where
  the request body is closed at once), it may stay silent (no message from the service) at most
  this long; then it is aborted, interrupting the user code, and retried by its retry policy.

A handler's own values (its manifest, or ``PATCH /services/{s}``; a handler's over its service's)
override the engine's (``REPRISE_INACTIVITY_TIMEOUT_MS``, ``REPRISE_ABORT_TIMEOUT_MS``).

Why a sweep: re-arming a timer for every frame costs a timer handle and a heap operation per
message. Instead each watched attempt counts its messages (one integer increment, or a byte count
its transport keeps anyway) and one timer per invoker looks at every watched attempt a few times
per timeout: a count that moved since the last look restarts the attempt's silence. A timeout
therefore fires between its value and its value plus one sweep interval after the last message.
Event-loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from reprise.engine.durations import format_ms

log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class AttemptTimeouts:
    inactivity_s: float  # 0: the handler's attempts run request/response
    abort_s: float

    @staticmethod
    def of(options: Mapping[str, Any], default: AttemptTimeouts) -> AttemptTimeouts:
        """A handler's timeouts: its options' ``inactivityTimeout``/``abortTimeout`` (milliseconds) over
        the engine's ``default``."""
        inactivity, abort = options.get("inactivityTimeout"), options.get("abortTimeout")
        if inactivity is None and abort is None:
            return default
        return AttemptTimeouts(default.inactivity_s if inactivity is None else int(inactivity) / 1000,
                               default.abort_s if abort is None else int(abort) / 1000)

    def abort_message(self) -> str:
        """Restate's message for the failure (its code RT0001)."""
        return (f"[RT0001] the invocation stream was closed after the 'abort timeout' "
                f"({format_ms(int(self.abort_s * 1000))}) fired")


class AbortTimeoutFired(Exception):
    """An attempt's abort timeout fired: it is failed and retried like any transport failure."""


class Watched(Protocol):
    """An attempt the sweep looks at."""

    def tick(self, now: float) -> None: ...


class Silence:
    """How long an attempt has been silent, from a message count the sweep compares between looks."""

    __slots__ = ("_seen", "_since")

    def __init__(self, now: float, seen: int = -1) -> None:
        self._seen, self._since = seen, now  # -1: the first look starts the silence

    def seconds(self, count: int, now: float) -> float:
        """Seconds without a message, ``count`` being the attempt's messages so far."""
        if count != self._seen:
            self._seen, self._since = count, now
            return 0.0
        return now - self._since

    def restart(self, now: float) -> None:
        """Count from now (the attempt was just asked to suspend: its abort timeout starts)."""
        self._since = now


class RequestWatch:
    """A request/response attempt's abort timeout: its transport reports its response bytes so far
    (``progress``) and how to give up on it (``stop``), once the request is sent (``attach``)."""

    __slots__ = ("timeouts", "_progress", "_stop", "_silence", "_sweeper")

    def __init__(self, timeouts: AttemptTimeouts, sweeper: TimeoutSweeper) -> None:
        self.timeouts, self._sweeper = timeouts, sweeper
        self._progress: Callable[[], int] | None = None
        self._stop: Callable[[Exception], None] | None = None
        self._silence = Silence(0.0)

    def attach(self, progress: Callable[[], int], stop: Callable[[Exception], None]) -> None:
        """The request was sent (again, on a fresh connection): watch it from now."""
        self._progress, self._stop = progress, stop
        self._silence = Silence(self._sweeper.now(), progress())
        self._sweeper.watch(self)

    def detach(self) -> None:
        self._sweeper.unwatch(self)
        self._progress = self._stop = None

    def tick(self, now: float) -> None:
        if self._progress is None or self._stop is None:
            return
        if self._silence.seconds(self._progress(), now) >= self.timeouts.abort_s:
            stop, self._progress, self._stop = self._stop, None, None
            self._sweeper.unwatch(self)
            stop(AbortTimeoutFired(self.timeouts.abort_message()))


class TimeoutSweeper:
    """One timer per invoker, armed only while some attempt is watched: every ``interval_s`` it
    lets each watched attempt look at its own silence."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.now = clock
        self._watched: set[Watched] = set()
        self._timer: asyncio.TimerHandle | None = None

    @staticmethod
    def interval_for(default: AttemptTimeouts) -> float:
        """A quarter of the engine's shortest timeout, within 50 ms and 1 s."""
        shortest = min(t for t in (default.inactivity_s, default.abort_s, 4.0) if t > 0)
        return min(1.0, max(0.05, shortest / 4))

    def watch(self, w: Watched) -> None:
        self._watched.add(w)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval_s, self._sweep)

    def unwatch(self, w: Watched) -> None:
        self._watched.discard(w)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._watched.clear()

    def sweep_now(self) -> None:
        """One look at every watched attempt (the timer's; tests call it with a fake clock)."""
        now = self.now()
        for w in list(self._watched):  # a tick may unwatch its attempt
            try:
                w.tick(now)
            except Exception:  # noqa: BLE001 - one attempt's failure must not stop the others' timeouts
                log.exception("timeout sweep of an attempt failed")
                self._watched.discard(w)

    def _sweep(self) -> None:
        self._timer = None
        self.sweep_now()
        if self._watched:
            self._timer = asyncio.get_running_loop().call_later(self.interval_s, self._sweep)
