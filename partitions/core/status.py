"""The invocation status machine. An illegal transition is a loud error, never a silent overwrite."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    SCHEDULED = "SCHEDULED"  # delayed: waits for its timer
    INBOXED = "INBOXED"  # waits for its object key (Virtual Objects)
    INVOKED = "INVOKED"  # an attempt runs or is about to
    SUSPENDED = "SUSPENDED"  # waits for a completion or signal
    BACKING_OFF = "BACKING_OFF"  # a failed attempt; the retry timer is set
    PAUSED = "PAUSED"  # out of attempts; an operator resumes it
    COMPLETED = "COMPLETED"  # output (or failure) kept for its retention


_ALLOWED: dict[str | None, set[Status]] = {  # a member, or its name: a StrEnum hashes as its str
    None: {Status.SCHEDULED, Status.INBOXED, Status.INVOKED, Status.COMPLETED},
    Status.SCHEDULED: {Status.INBOXED, Status.INVOKED, Status.COMPLETED},
    Status.INBOXED: {Status.INVOKED, Status.COMPLETED},
    Status.INVOKED: {Status.INVOKED, Status.SUSPENDED, Status.BACKING_OFF, Status.PAUSED, Status.COMPLETED},
    Status.SUSPENDED: {Status.INVOKED, Status.PAUSED, Status.COMPLETED},
    Status.BACKING_OFF: {Status.INVOKED, Status.PAUSED, Status.COMPLETED},
    Status.PAUSED: {Status.INVOKED, Status.COMPLETED},
    Status.COMPLETED: set(),
}


class IllegalTransition(RuntimeError):
    pass


def check_transition(invocation_id: str, source: Status | str | None, target: Status) -> None:
    """Raise unless ``source`` (a member or its name: a StrEnum looks up as its name) may become ``target``."""
    if target not in _ALLOWED[source]:
        source = Status(source) if source else None
        raise IllegalTransition(f"invocation {invocation_id}: expected a state that may become {target.value}, "
                                f"found {source.value if source else 'none'}")
