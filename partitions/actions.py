"""What apply() asks the partition's leader to do once the batch is committed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RunAttempt:
    """Run attempt ``attempt`` of an invocation against its deployment."""

    invocation_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ScheduleTimer:
    """Fire the durable timer ``timer_key`` at ``fire_at_ms`` (wall clock, ms)."""

    timer_key: str
    fire_at_ms: int


@dataclass(frozen=True, slots=True)
class ShipOutbox:
    """Produce outbox entry ``seq`` to its destination."""

    seq: int


@dataclass(frozen=True, slots=True)
class StreamNotification:
    """A notification just made durable at journal ``index``: send it to attempt ``attempt`` if that
    attempt still streams (BIDI_STREAM mode), so the handler goes on without a suspension."""

    invocation_id: str
    attempt: int
    index: int
    frame: bytes


@dataclass(frozen=True, slots=True)
class AbortAttempt:
    """Stop a streaming attempt whose output no longer counts (killed, paused, superseded)."""

    invocation_id: str
    attempt: int


Action = RunAttempt | ScheduleTimer | ShipOutbox | StreamNotification | AbortAttempt
