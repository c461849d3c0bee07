"""One attempt in the protocol's BIDI_STREAM mode: the handler keeps running across its steps.

In request/response mode every ``ctx.run`` (call, sleep, ...) ends the attempt with a suspension and
the next attempt replays the whole journal. Here the request stays open instead:

1. Start and the journal go out as the request's first DATA; the request is not ended.
2. Frames from the handler are gathered in an ``AttemptOutput``. When the handler needs something
   only the runtime gives (a run's result, a call's, a sleep's, ...), the entries so far go to the
   log as a Progress record.
3. apply() journals them and offers every notification it appends for this attempt, in journal
   order (``StreamNotification``); ``deliver`` writes those to the stream. Nothing reaches the
   handler before it is durable and applied, so a replay later sees exactly what the handler saw.
4. Silence (the handler waits for something slow: a long sleep, an awakeable) for the handler's
   inactivity timeout ends the request body, unless a run's result is on its way; the handler then
   suspends as in request/response mode, and the stream and its slot are freed. If it then stays
   silent for its abort timeout (its user code is stuck), the stream is reset and the attempt fails,
   to be retried (``partitions/invoker/attempt_timeouts.py``: one sweep per invoker watches them).
5. End, Suspension or Error end the attempt as before: the final InvokerEffects record, then the
   request body is closed (the SDK waits for that before it finishes its response).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from reprise.engine.identity import answered
from reprise.engine.limits import LimitExceeded
from reprise.engine.protocol import journal as pj
from reprise.engine.protocol.framing import FrameReader, ProtocolError
from reprise.partitions.invoker.attempt_output import AttemptOutput, Effects
from reprise.partitions.invoker.attempt_timeouts import AttemptTimeouts, Silence, TimeoutSweeper
from reprise.partitions.invoker.h2c import H2cError


class Stream(Protocol):
    """A full-duplex request: ``h2c.H2cStream`` or ``embedded.EmbeddedStream``. Its attempt reads
    these, never sets them."""

    @property
    def url(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def ended(self) -> bool: ...

    def send(self, data: bytes) -> None: ...
    def end(self) -> None: ...
    def reset(self) -> None: ...
    async def read(self, timeout_s: float | None) -> bytes | None: ...


LONGEST_RUN_WAIT_S = 30.0  # a run's result that takes longer than this (broker trouble): suspend instead


class LiveAttempt:
    """The state of one streaming attempt that apply() may send notifications to."""

    def __init__(self, known_entries: int, timeouts: AttemptTimeouts, sweeper: TimeoutSweeper) -> None:
        self.next_index = known_entries  # journal entries below this went out with the request
        self.timeouts, self._sweeper = timeouts, sweeper
        self.messages = 0  # chunks read and notifications sent: the sweep sees silence as no change here
        self._silence = Silence(0.0)
        self.abort_fired = False  # the abort timeout reset the stream
        self.stream: Stream | None = None
        self._pending: list[bytes] = []  # delivered before the stream was open
        self._awaited_runs: set[int] = set()  # run results proposed, not yet delivered
        self.aborted = False
        self.streamed = 0  # notifications sent on the stream (for the metrics)
        self.progressed = False  # a Progress record was emitted: the handler waited for the runtime

    @property
    def waited(self) -> bool:
        """Whether the handler waited on the runtime in this attempt (what streaming is for)."""
        return self.streamed > 0 or self.progressed

    @property
    def input_open(self) -> bool:
        return self.stream is None or not self.stream.ended

    def deliver(self, index: int, frame: bytes) -> None:
        """A durable notification of this invocation; sent unless the handler already has it."""
        if index < self.next_index or not self.input_open:
            return
        self.next_index = index + 1
        self.messages += 1
        if self._awaited_runs:
            kind, ident = pj.notification_id(frame)
            if kind == "completion":
                self._awaited_runs.discard(int(ident))
        self.streamed += 1
        if self.stream is None:
            self._pending.append(frame)
        else:
            self.stream.send(frame)

    def abort(self) -> None:
        """The attempt's output no longer counts (killed, paused, superseded): stop it now."""
        self.aborted = True
        if self.stream is not None:
            self.stream.reset()

    def _flush(self, out: AttemptOutput, emit_progress: Callable[[Effects], None]) -> None:
        """The entries so far go to the log as a Progress record."""
        self._awaited_runs.update(out.proposed)
        self.progressed = True
        emit_progress(out.progress())

    def close_input(self) -> None:
        if self.stream is not None:
            self.stream.end()

    def tick(self, now: float) -> None:
        """The sweep's look: past the inactivity timeout the input is closed (the handler suspends),
        past the abort timeout after that the stream is reset (the attempt fails and is retried)."""
        if self.stream is None or self.aborted:
            return
        silent = self._silence.seconds(self.messages, now)
        if self.input_open:
            limit = self.timeouts.inactivity_s
            if self._awaited_runs:  # a run's result is on its way: the engine is slow, not the handler
                limit = max(limit, LONGEST_RUN_WAIT_S)
            if silent >= limit:
                self.close_input()  # the handler waits for something slow: let it suspend
                self._silence.restart(now)  # the abort timeout starts
        elif silent >= self.timeouts.abort_s:
            self.abort_fired = True
            self._sweeper.unwatch(self)
            self.stream.reset()

    async def run(self, open_stream: Callable[[], Awaitable[Stream]], out: AttemptOutput,
                  emit_progress: Callable[[Effects], None]) -> Effects | None:
        """Drive the attempt to its end; returns the final effects body (None if aborted)."""
        try:
            self.stream = await open_stream()
        except H2cError as e:
            return None if self.aborted else out.failed(503, f"{type(e).__name__} calling the deployment: {e}")
        stream = self.stream
        if self.aborted:  # killed or paused while the stream was opening
            stream.reset()
            return None
        if self._pending:
            stream.send(b"".join(self._pending))
            self._pending.clear()
        reader, error_body = FrameReader(out.limits.protocol_frame), bytearray()
        self._silence = Silence(self._sweeper.now(), self.messages)
        self._sweeper.watch(self)
        try:
            while True:
                chunk = await stream.read(None)  # the sweep bounds the silence (tick)
                if self.aborted:
                    return None
                if chunk is None:
                    break
                self.messages += 1
                if stream.status != 200:
                    if len(error_body) < 300:  # only its start goes into the failure's message
                        error_body += chunk
                    continue
                for frame in reader.feed(chunk):
                    if out.entries and not out.has_room(frame):  # a step's record is full: the rest go in the next
                        self._flush(out, emit_progress)
                    final = out.take(frame)
                    if final is not None:
                        return final  # the finally below ends our input: the SDK waits for that
                if out.wants_flush:
                    self._flush(out, emit_progress)
        except H2cError as e:
            if self.abort_fired:
                return out.failed(504, self.timeouts.abort_message())
            return None if self.aborted else out.failed(503, f"stream to {stream.url} failed: {e}")
        except ProtocolError as e:
            stream.reset()
            return out.violation(e)
        except LimitExceeded as e:
            stream.reset()
            return out.over_limit(e)
        except asyncio.CancelledError:
            stream.reset()  # the partition moved away: the handler must stop, not suspend
            raise
        finally:
            self._sweeper.unwatch(self)
            stream.end()
        if stream.status != 200:
            return out.failed(stream.status, answered(stream.status, bytes(error_body[:300])))
        return out.unterminated()
