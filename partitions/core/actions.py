"""What apply() asks the partition's leader to do once the batch is committed.

Plain slotted dataclasses, not frozen ones: apply() makes several per invocation, and a frozen
dataclass's ``__init__`` sets each field through ``object.__setattr__`` (about 3× the cost). Nothing
changes an action after apply() made it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RunAttempt:
    """Run attempt ``attempt`` of an invocation against its deployment."""

    invocation_id: str
    attempt: int


@dataclass(slots=True)
class ScheduleTimer:
    """Fire the durable timer ``timer_key`` at ``fire_at_ms`` (wall clock, ms)."""

    timer_key: str
    fire_at_ms: int


@dataclass(slots=True)
class ShipOutbox:
    """Produce outbox entry ``seq`` to its destination."""

    seq: int


@dataclass(slots=True)
class StreamNotification:
    """A notification just made durable at journal ``index``: send it to attempt ``attempt`` if that
    attempt still streams (BIDI_STREAM mode), so the handler goes on without a suspension."""

    invocation_id: str
    attempt: int
    index: int
    frame: bytes


@dataclass(slots=True)
class AbortAttempt:
    """Stop a streaming attempt whose output no longer counts (killed, paused, superseded)."""

    invocation_id: str
    attempt: int


Action = RunAttempt | ScheduleTimer | ShipOutbox | StreamNotification | AbortAttempt
