"""Restart-as-new (Restate's ``PATCH /invocations/{id}/restart-as-new``): a new invocation, with a
new id on the same partition, from a completed one.

``from`` 0 (or none) gives it only the original's input. ``from`` N > 0 copies the journal prefix
up to entry N (included) and the completions of the commands in it, wherever they were journaled;
a command in the prefix whose completion never came refuses the restart. The copied entries are
not acted on again (their state changes, calls and timers happened for the original): the handler
replays them and goes on from there. The answers and messages are Restate's.
"""

from __future__ import annotations

from reprise.engine.ids import InvocationId
from reprise.engine.protocol import journal as pj
from reprise.engine.protocol.messages import MessageType, is_notification
from reprise.partitions.core import lifecycle
from reprise.partitions.core.context import ApplyContext
from reprise.partitions.core.status import Status
from reprise.schemas.records import InvocationStatus

Row = InvocationStatus
KEEP = "keep"  # restart_deployment: pin the new invocation to the original's deployment
# The fields of a command that name the completions it waits for (a call has two: its id, its result).
_COMPLETION_FIELDS = ("result_completion_id", "invocation_id_notification_idx")
_INPUT = int(MessageType.INPUT_COMMAND)


class Refused(Exception):
    """A restart Restate refuses: its status and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def restart_as_new(ctx: ApplyContext, row: Row, now_ms: int, restart_from: int | None,
                   deployment: str | None) -> str:
    """Create the new invocation and start it (or queue it behind its object key); returns its id.
    Raises Refused where Restate answers with an error."""
    inv, status = row["invocation_id"], row["status"]
    if status in (Status.SCHEDULED.value, Status.INBOXED.value):
        raise Refused(425, f"The invocation '{inv}' cannot be restarted because it's not running yet.")
    if status != Status.COMPLETED.value:
        raise Refused(409, f"The invocation '{inv}' is still running.")
    if row["handler_kind"] == "WORKFLOW":
        raise Refused(422, f"Restarting the invocation '{inv}' is not supported. Restarting workflows is not "
                           f"supported, and restarting invocations created using the old service protocol.")
    first = ctx.tables.journals.entry(inv, 0) if row["journal_length"] else None
    if first is None or pj.frame_type(first) != _INPUT:
        raise Refused(410, f"The invocation '{inv}' cannot be restarted because the input is not available. "
                           f"This indicates that the journal was already purged, or not retained at all.")
    entries = _prefix_with_completions(ctx, row, restart_from or 0)
    new_id = str(InvocationId(InvocationId.parse(inv).pk,
                              InvocationId.derived("", "restart", ctx.partition, ctx.offset).uuid))
    new = lifecycle.new_row(new_id, row["service"], row["handler"], row["key"], row["handler_kind"], now_ms,
                            restarted_from=inv)
    if restart_from:  # from 0 runs on the latest deployment, as Restate
        new["deployment_id"] = row["deployment_id"] if deployment == KEEP else deployment
    for frame in entries:
        lifecycle.append_entry(ctx, new, frame)
    lifecycle.admit(ctx, new, now_ms)
    return new_id


def _prefix_with_completions(ctx: ApplyContext, row: Row, last: int) -> list[bytes]:
    """Entries 0..``last`` of the journal, then the notifications completing the commands among them."""
    inv, length = row["invocation_id"], row["journal_length"]
    if last >= length:
        raise _incomplete(inv)
    journal = ctx.tables.journals.read(inv, length)
    prefix = journal[:last + 1]
    awaited: set[int] = set()
    for frame in prefix:
        if not is_notification(pj.frame_type(frame)):
            msg = pj.decode(frame)
            fields = msg.DESCRIPTOR.fields_by_name
            awaited.update(getattr(msg, f) for f in _COMPLETION_FIELDS if f in fields and getattr(msg, f))
    for frame in prefix:
        if is_notification(pj.frame_type(frame)):
            awaited.discard(_completion_id(frame))
    later = []
    for frame in journal[last + 1:]:
        if is_notification(pj.frame_type(frame)) and _completion_id(frame) in awaited:
            awaited.discard(_completion_id(frame))
            later.append(frame)
    if awaited:
        raise _incomplete(inv)
    return prefix + later


def _completion_id(frame: bytes) -> int | None:
    kind, ident = pj.notification_id(frame)
    return ident if kind == "completion" and isinstance(ident, int) else None


def _incomplete(inv: str) -> Refused:
    return Refused(400, f"The prefix of the journal '{inv}' up to 'from' (included) contains some Commands "
                        f"without respective Completions.")
