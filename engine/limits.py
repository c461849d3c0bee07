"""The size limits, all derived from one setting: ``max_message_bytes`` (``REPRISE_MAX_MESSAGE_BYTES``).

Why one setting: everything a service produces ends up in one log record (an attempt's
InvokerEffects), and a record Kafka refuses would leave its invocation with nothing driving it. So
each entry point checks its bytes against what still fits a record, before anything is produced,
and a value over its limit fails with an error that names the limit. docs/limits.md is the table.
"""

from __future__ import annotations

from dataclasses import dataclass

from reprise.engine.protocol.messages import MessageType, type_name

# What a log record may carry besides its payload (Avro framing, ids, a failure's message): the
# topics and producers are configured for max_message_bytes plus this (engine/kafka.py).
ENVELOPE_BYTES = 64 * 1024
# Counted per journal entry against the attempt's output: its Avro length prefix and its handler-kind
# map entry (a position and a kind name), so a record of many tiny entries still fits.
ENTRY_OVERHEAD_BYTES = 24
# A failure's message (the handler's error, a transport error) is cut to this in the log.
FAILURE_MESSAGE_CHARS = 8 * 1024
# The code of the terminal failure when a service's output crosses a limit.
LIMIT_CODE = 500
SETTING = "max_message_bytes, REPRISE_MAX_MESSAGE_BYTES"


# What a message over its limit is, in the words of the SDKs' API.
_WHAT = {MessageType.PROPOSE_RUN_COMPLETION: "a ctx.run result", MessageType.SET_STATE_COMMAND: "a state value",
         MessageType.OUTPUT_COMMAND: "the handler's output", MessageType.CALL_COMMAND: "a call's parameter",
         MessageType.ONE_WAY_CALL_COMMAND: "a send's parameter"}


def what_is(msg_type: int) -> str:
    """A protocol message named for a user: "a ctx.run result", "a state value", ..."""
    return _WHAT.get(msg_type, f"a {type_name(msg_type)} message")  # type: ignore[call-overload]


class LimitExceeded(Exception):
    """Bytes from a service over one of the limits: the invocation fails (terminal), naming the limit."""


@dataclass(frozen=True)
class Limits:
    """The limits of one configuration (see docs/limits.md)."""

    message_bytes: int

    @property
    def request_body(self) -> int:
        """An ingress request's body (413 above it)."""
        return self.message_bytes

    @property
    def attempt_output(self) -> int:
        """The journal entries one effects record carries (a whole request/response attempt, or one
        streamed step), each counted with ENTRY_OVERHEAD_BYTES."""
        return self.message_bytes

    @property
    def journal_entry(self) -> int:
        """One journal entry: a ``ctx.run`` result, a state value, a call's parameter, the output."""
        return self.message_bytes - ENTRY_OVERHEAD_BYTES

    @property
    def protocol_frame(self) -> int:
        """One protocol message's payload from a service."""
        return self.message_bytes

    @property
    def response_body(self) -> int:
        """A service's whole response in request/response mode: the output plus its closing frames."""
        return self.message_bytes + ENVELOPE_BYTES


def exceeded(what: str, size: int, limit: int) -> str:
    """The message of a crossed limit: what, how big, the limit and the setting that derives it."""
    return f"{what} is {size} bytes, over the limit of {limit} bytes (derived from {SETTING})"
