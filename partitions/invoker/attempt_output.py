"""What a deployment answers in one attempt, frame by frame, turned into InvokerEffects bodies.

Shared by both transports: request/response feeds the frames of a complete body and gets the final
body; a streaming attempt (BIDI_STREAM) feeds frames as they arrive and takes a Progress body
whenever the handler waits for something only the runtime can give it (``wants_flush``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reprise.engine.limits import (
    ENTRY_OVERHEAD_BYTES,
    FAILURE_MESSAGE_CHARS,
    LIMIT_CODE,
    LimitExceeded,
    Limits,
    exceeded,
    what_is,
)
from reprise.engine.protocol import journal as pj
from reprise.engine.protocol.framing import Frame, ProtocolError
from reprise.engine.protocol.messages import MessageType, is_command, type_name
from reprise.schemas.records import InvocationStatus

Effects = dict[str, Any]
# (row, frame, position, kinds) -> (code, message) of a terminal refusal, or None
CommandCheck = Callable[[InvocationStatus, Frame, str, dict[str, str]], "tuple[int, str] | None"]
# (row, code, message, deployment id, has entries, entries, delay) -> an AttemptFailed body
Retry = Callable[..., Effects]

# Commands whose result only the runtime can produce: a streaming attempt journals them at once so
# the result (a notification) can come back on the stream while the handler waits for it.
NEEDS_RUNTIME = frozenset({
    MessageType.CALL_COMMAND, MessageType.ONE_WAY_CALL_COMMAND, MessageType.SLEEP_COMMAND,
    MessageType.GET_PROMISE_COMMAND, MessageType.PEEK_PROMISE_COMMAND, MessageType.COMPLETE_PROMISE_COMMAND,
    MessageType.GET_LAZY_STATE_COMMAND, MessageType.GET_LAZY_STATE_KEYS_COMMAND,
    MessageType.ATTACH_INVOCATION_COMMAND, MessageType.GET_INVOCATION_OUTPUT_COMMAND,
})


class AttemptOutput:
    """Accumulates the journal entries of one attempt until it ends (or, streaming, until a flush)."""

    def __init__(self, row: InvocationStatus, deployment_id: str, check: CommandCheck, retry: Retry,
                 limits: Limits) -> None:
        self._row, self._dep, self._check, self._retry = row, deployment_id, check, retry
        self.limits = limits
        self._budget = limits.attempt_output  # what the entries taken since the last flush may still weigh
        self.entries: list[bytes] = []
        self.kinds: dict[str, str] = {}
        self.proposed: list[int] = []  # run completions proposed since the last flush
        self.wants_flush = False
        self.journaled_any = False  # a Progress body was taken: later failures keep those entries

    def take(self, frame: Frame) -> Effects | None:
        """One frame; returns the final body when the frame ends the attempt."""
        t = frame.type
        if is_command(t):
            refusal = self._check(self._row, frame, str(len(self.entries)), self.kinds)
            if refusal is not None:
                return failed_effects(refusal[0], refusal[1], retryable=False, deployment_id=self._dep)
            over = self._admit(frame.raw, t)
            if over is not None:
                return over
            self.entries.append(frame.raw)
            self.wants_flush = self.wants_flush or t in NEEDS_RUNTIME
        elif t == MessageType.PROPOSE_RUN_COMPLETION:
            notification = pj.run_completion_from_proposal(frame.payload)
            over = self._admit(notification, t)
            if over is not None:
                return over
            self.entries.append(notification)
            self.proposed.append(int(pj.notification_id(notification)[1]))
            self.wants_flush = True
        elif t == MessageType.SUSPENSION:
            s = pj.decode_frame_message(frame)
            return self._body({"completions": list(s.waiting_completions), "signals": list(s.waiting_signals),
                               "named_signals": list(s.waiting_named_signals)})
        elif t == MessageType.END:
            return self._body({})
        elif t == MessageType.ERROR:
            e = pj.decode_frame_message(frame)
            delay = e.next_retry_delay if e.HasField("next_retry_delay") else None
            return self.failed(e.code, e.message, delay)
        else:
            raise ProtocolError(f"unexpected message type 0x{t:04x} ({type_name(t)}) from the deployment")
        return None

    def progress(self) -> Effects:
        """The entries so far as a Progress body (a streaming attempt that goes on); starts afresh."""
        body = self._body({"proposed": self.proposed})
        self.entries, self.kinds, self.proposed, self.wants_flush = [], {}, [], False
        self._budget = self.limits.attempt_output
        self.journaled_any = True
        return body

    def failed(self, code: int, message: str, delay_ms: int | None = None) -> Effects:
        """The attempt failed after the entries so far (which are kept: they were valid commands)."""
        has_entries = bool(self.entries) or self.journaled_any
        return self._retry(self._row, code, message, self._dep, has_entries, self.entries, delay_ms)

    def violation(self, error: ProtocolError) -> Effects:
        return self.failed(571, f"protocol violation: {error}")

    def has_room(self, frame: Frame) -> bool:
        """Whether the frame fits the record being gathered (a run's notification is a few bytes
        longer than its proposal: counted with a margin)."""
        return len(frame.raw) + ENTRY_OVERHEAD_BYTES + 16 <= self._budget

    def over_limit(self, error: LimitExceeded) -> Effects:
        """Bytes from the service over a limit: terminal, since a retry would produce them again."""
        return failed_effects(LIMIT_CODE, str(error), retryable=False, deployment_id=self._dep)

    def _admit(self, entry: bytes, t: int) -> Effects | None:
        """Count an entry against what one effects record may carry; the terminal failure if over."""
        self._budget -= len(entry) + ENTRY_OVERHEAD_BYTES
        if self._budget >= 0:
            return None
        if len(entry) > self.limits.journal_entry:
            what = f"{what_is(t)} of {self._row['service']}/{self._row['handler']}"
            return self.over_limit(LimitExceeded(exceeded(what, len(entry), self.limits.journal_entry)))
        used = self.limits.attempt_output - self._budget
        what = f"the output of one attempt of {self._row['service']}/{self._row['handler']}"
        return self.over_limit(LimitExceeded(exceeded(what, used, self.limits.attempt_output)))

    def unterminated(self) -> Effects:
        return self.failed(502, "response ended without End, Suspension or Error")

    def _body(self, outcome: dict[str, Any]) -> Effects:
        return {"deployment_id": self._dep, "entries": self.entries, "handler_kinds": self.kinds,
                "outcome": outcome}


def failed_effects(code: int, message: str, retryable: bool, deployment_id: str | None,
            delay_ms: int | None = None) -> Effects:
    if len(message) > FAILURE_MESSAGE_CHARS:  # a handler's error text must not make its record too big
        message = message[:FAILURE_MESSAGE_CHARS] + f"... ({len(message) - FAILURE_MESSAGE_CHARS} more characters)"
    return {"deployment_id": deployment_id, "entries": [], "outcome": {
        "code": code, "message": message, "retryable": retryable, "next_retry_delay_ms": delay_ms}}


def tagged_outcome(outcome: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The outcome with its Avro union branch named, so the encoder looks the branch up by name
    instead of matching the dict's keys against each record branch (``avro_compiled._pick``).
    Measured with fastavro, whose branch trial halved an InvokerEffects record's encoding time;
    not measured again with the compiled codec, where matching keys is cheaper."""
    if "proposed" in outcome:
        return "reprise.log.Progress", outcome
    if "completions" in outcome:
        return "reprise.log.Suspended", outcome
    if "retryable" in outcome:
        return "reprise.log.AttemptFailed", outcome
    return "reprise.log.Ended", outcome
