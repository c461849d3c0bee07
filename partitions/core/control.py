"""Operator and signal transitions: cancel, kill, purge, purge-journal, pause, resume, and delivering signals.

Each returns an HTTP-like answer (code, message) for the admin API: 200 done, 202 accepted,
404 unknown, 409 not allowed in the invocation's state.
"""

from __future__ import annotations

from reprise.engine.protocol import journal as pj
from reprise.partitions.core import lifecycle
from reprise.partitions.core.actions import AbortAttempt
from reprise.partitions.core.context import ApplyContext
from reprise.partitions.core.status import Status
from reprise.schemas.records import Failure, InvocationStatus

Row = InvocationStatus  # an invocation's status row (schemas/storage/invocation_status.v1.avsc)
CANCEL_SIGNAL = 1


def deliver_signal(ctx: ApplyContext, row: Row, now_ms: int, signal: int | str, value: bytes | None,
                   failure: Failure | None) -> None:
    """Append signal ``signal`` (an index, or a name) to the journal and wake the invocation if it waits for it."""
    fail = (failure["code"], failure["message"]) if failure else None
    lifecycle.append_entry(ctx, row, pj.signal_notification(signal, value, fail))
    lifecycle.resume_if_awaited(ctx, row, now_ms)


def cancel(ctx: ApplyContext, row: Row, now_ms: int) -> tuple[int, str]:
    """Deliver the cancel signal in every state; one that never started simply ends as cancelled."""
    status = Status(row["status"])
    if status == Status.COMPLETED:
        return 409, f"invocation {row['invocation_id']} already completed"
    if status in (Status.SCHEDULED, Status.INBOXED):
        if status == Status.INBOXED:
            ctx.tables.objects.remove(row["service"], _inbox_key(row), row["invocation_id"])
        lifecycle.complete(ctx, row, now_ms, None, {"code": 409, "message": "cancelled"}, outcome="cancelled")
        return 202, "cancelled before it started"
    lifecycle.append_entry(ctx, row, pj.signal_notification(CANCEL_SIGNAL))
    if status in (Status.BACKING_OFF, Status.PAUSED):
        lifecycle.start_attempt(ctx, row, now_ms)  # the handler must see the signal now
    else:
        lifecycle.resume_if_awaited(ctx, row, now_ms)
    return 202, "cancel signal delivered"


def kill(ctx: ApplyContext, row: Row, now_ms: int) -> tuple[int, str]:
    """End at once with 409 'killed', releasing the object key; the running attempt is ignored."""
    if row["status"] == Status.COMPLETED.value:
        return 409, f"invocation {row['invocation_id']} already completed"
    if row["status"] == Status.INBOXED.value:
        ctx.tables.objects.remove(row["service"], _inbox_key(row), row["invocation_id"])
    if row["status"] == Status.INVOKED.value:
        ctx.actions.append(AbortAttempt(row["invocation_id"], row["attempt"]))
    lifecycle.complete(ctx, row, now_ms, None, {"code": 409, "message": "killed"}, outcome="killed",
                       journal_retention_ms=row.get("journal_retention_ms"))  # from its last attempt, if one ended
    return 200, "killed"


def purge(ctx: ApplyContext, row: Row, now_ms: int) -> tuple[int, str]:
    """Forget a finished invocation: journal, status, and for a workflow run its state and promises."""
    if row["status"] != Status.COMPLETED.value:
        return 409, f"invocation {row['invocation_id']} is {row['status']}: only a completed one can be purged"
    forget(ctx, row)
    return 200, "purged"


def purge_journal(ctx: ApplyContext, row: Row, now_ms: int) -> tuple[int, str]:
    """Restate's: delete a completed invocation's journal and keep its status and result (again: 200)."""
    if row["status"] != Status.COMPLETED.value:
        return 409, f"The invocation '{row['invocation_id']}' is not yet completed."
    lifecycle.drop_journal(ctx, row)
    ctx.tables.invocations.put(row)
    return 200, "journal purged"


def forget(ctx: ApplyContext, row: Row) -> None:
    ctx.tables.journals.delete(row["invocation_id"], row["journal_length"])
    ctx.tables.invocations.delete(row["invocation_id"])
    if row["handler_kind"] == "WORKFLOW" and row["key"] is not None:
        ctx.tables.state.clear_all(row["service"], row["key"])
        ctx.tables.promises.clear(row["service"], row["key"])


def pause(ctx: ApplyContext, row: Row, now_ms: int) -> tuple[int, str]:
    """Restate's answers: 202 pausing, 200 already paused, 409 not running."""
    if row["status"] == Status.PAUSED.value:
        return 200, "already paused"
    if row["status"] not in (Status.INVOKED.value, Status.BACKING_OFF.value, Status.SUSPENDED.value):
        return 409, f"invocation {row['invocation_id']} is {row['status']}: it cannot be paused"
    if row["status"] == Status.INVOKED.value:
        ctx.actions.append(AbortAttempt(row["invocation_id"], row["attempt"]))
    lifecycle.set_status(row, Status.PAUSED, now_ms)
    ctx.tables.invocations.put(row)
    return 202, "paused"


def resume(ctx: ApplyContext, row: Row, now_ms: int) -> tuple[int, str]:
    if row["status"] != Status.PAUSED.value:
        return 409, f"invocation {row['invocation_id']} is {row['status']}: only a paused one can be resumed"
    lifecycle.start_attempt(ctx, row, now_ms)
    return 200, "resumed"


def _inbox_key(row: Row) -> str:
    """The object key an INBOXED invocation waits for (only keyed invocations queue)."""
    key = row["key"]
    if key is None:
        raise KeyError(f"invocation {row['invocation_id']} is INBOXED without an object key")
    return key


COMMANDS = {"cancel": cancel, "kill": kill, "purge": purge, "purge-journal": purge_journal, "pause": pause,
            "resume": resume}
