"""Transitions of one invocation, shared by the handlers of every record kind.

Each function reads and writes the invocation's row and appends the actions the leader must take.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reprise.engine.ids import InvocationId
from reprise.engine.protocol import journal as pj
from reprise.engine.protocol.messages import MessageType, is_notification
from reprise.partitions.core import state_mutations
from reprise.partitions.core.actions import RunAttempt, ScheduleTimer, ShipOutbox, StreamNotification
from reprise.partitions.core.context import ApplyContext
from reprise.partitions.core.status import Status, check_transition
from reprise.schemas import codec
from reprise.schemas.records import Caller, Failure, InvocationStatus, ReplyTo

Row = InvocationStatus  # an invocation's status row (schemas/storage/invocation_status.v1.avsc)
# The hot statuses as module globals: ``Status.INVOKED`` costs ~170 ns a lookup on Python 3.11, a global
# ~8 ns; a member compares with a row's status name at str's speed (StrEnum keeps str.__eq__).
_INVOKED, _COMPLETED, _SUSPENDED = Status.INVOKED, Status.COMPLETED, Status.SUSPENDED
_OUTPUT_COMMAND = int(MessageType.OUTPUT_COMMAND)


def new_row(inv: str, service: str, handler: str, key: str | None, handler_kind: str | None, now_ms: int, *,
            idempotency_key: str | None = None, caller: Caller | None = None, reply_to: ReplyTo | None = None,
            restarted_from: str | None = None, sender_id: str | None = None) -> Row:
    """A new invocation's status row, with no status yet (set_status gives it its first) and an empty journal."""
    return {
        "invocation_id": inv, "service": service, "handler": handler, "key": key,
        "handler_kind": handler_kind, "status": "", "attempt": 0, "journal_length": 0,
        "completed_ids": [], "signal_ids": [], "named_signals": [], "waiting_completions": [],
        "waiting_signals": [], "waiting_named": [], "deployment_id": None,
        "idempotency_key": idempotency_key, "caller": caller, "reply_to": reply_to,
        "attached_callers": [], "attached_replies": [],
        "created_ms": now_ms, "modified_ms": now_ms, "failures_since_entry": 0, "last_entry_ms": now_ms,
        "next_retry_ms": None, "last_failure": None, "output_index": None, "completed_ms": None,
        "result_value": None, "result_failure": None, "journal_retention_ms": None, "restarted_from": restarted_from,
        "completion_retention_ms": None, "sender_id": sender_id,
    }


def set_status(row: Row, target: Status, now_ms: int) -> None:
    check_transition(row["invocation_id"], row.get("status") or None, target)
    row["status"] = target._value_  # the documented sunder attribute: .value is a slow descriptor on 3.11
    row["modified_ms"] = max(row.get("modified_ms", 0), now_ms)


def start_attempt(ctx: ApplyContext, row: Row, now_ms: int) -> None:
    """Move to INVOKED with a new attempt number and ask the leader to run it."""
    set_status(row, _INVOKED, now_ms)
    row["attempt"] += 1
    row["waiting_completions"], row["waiting_signals"], row["waiting_named"] = [], [], []
    row["next_retry_ms"] = None
    ctx.tables.invocations.put(row)
    ctx.actions.append(RunAttempt(row["invocation_id"], row["attempt"]))


def from_stale_leader(ctx: ApplyContext, rec: dict[str, Any], what: str) -> bool:
    """A leader-produced record (effects, timer, outbox progress) under an epoch that is not current."""
    epoch = ctx.tables.leadership.epoch()
    if rec["epoch"] != epoch:
        ctx.drop(f"{what}: expected epoch {epoch}, found {rec['epoch']}")
        return True
    return False


def is_duplicate(ctx: ApplyContext, rec: dict[str, Any], kind: str) -> bool:
    """A record another partition's outbox shipped again: its (partition, seq) was applied before."""
    src = rec.get("source")
    if src is not None and ctx.tables.dedup.seen(src["partition"], src["seq"]):
        ctx.drop(f"{kind} from partition {src['partition']} seq {src['seq']} already applied")
        return True
    return False


def live_invocation(ctx: ApplyContext, inv: str, kind: str) -> Row | None:
    """The invocation a record is for, unless it is gone or completed (then the record changes nothing)."""
    row = ctx.tables.invocations.get(inv)
    if row is None or row["status"] == _COMPLETED:
        ctx.drop(f"{kind} for {inv}: invocation is gone or completed")
        return None
    return row


def lock_key(row: Row) -> str | None:
    """The object key the invocation must hold while it runs, or None: exclusive handlers of a keyed
    service run one at a time per key (unknown kind: exclusive)."""
    key = row["key"]
    return key if key is not None and row["handler_kind"] in (None, "EXCLUSIVE") else None


def admit(ctx: ApplyContext, row: Row, now_ms: int) -> None:
    """Start an invocation that may run now, or queue it behind its object key."""
    key = lock_key(row)
    if key is not None:
        holder = ctx.tables.objects.lock_holder(row["service"], key)
        if holder is not None and holder != row["invocation_id"]:
            set_status(row, Status.INBOXED, now_ms)
            ctx.tables.invocations.put(row)
            ctx.tables.objects.push(row["service"], key, row["invocation_id"])
            return
        ctx.tables.objects.set_lock(row["service"], key, row["invocation_id"])
    start_attempt(ctx, row, now_ms)


def release(ctx: ApplyContext, row: Row, now_ms: int) -> None:
    """An exclusive invocation ended: hand its key to the next one in the inbox."""
    key = lock_key(row)
    if key is None or ctx.tables.objects.lock_holder(row["service"], key) != row["invocation_id"]:
        return
    nxt = ctx.tables.objects.pop(row["service"], key)
    while nxt is not None and state_mutations.is_marker(nxt):  # an operator's state change, in inbox order
        state_mutations.apply_queued(ctx.tables, nxt)
        nxt = ctx.tables.objects.pop(row["service"], key)
    ctx.tables.objects.set_lock(row["service"], key, nxt)
    if nxt is not None:
        waiting = ctx.tables.invocations.get(nxt)
        if waiting is None:
            raise KeyError(f"inbox of {row['service']}/{row['key']}: expected invocation {nxt}, found none")
        start_attempt(ctx, waiting, now_ms)


def append_entry(ctx: ApplyContext, row: Row, frame: bytes) -> int:
    """Append one framed message to the journal; a notification marks its id as present.

    A notification for a running attempt is also offered to it (StreamNotification): a streaming
    attempt sees every notification in journal order, as a replay later would.
    """
    index = row["journal_length"]
    ctx.tables.journals.put(row["invocation_id"], index, frame)
    row["journal_length"] = index + 1
    t = pj.frame_type(frame)
    if is_notification(t):
        kind, ident = pj.notification_id(frame)
        # the id's type follows its kind (an int for completions and signals, a name for named signals)
        present: list[Any] = (row["completed_ids"] if kind == "completion" else
                              row["signal_ids"] if kind == "signal" else row["named_signals"])
        if ident not in present:
            present.append(ident)
        if row["status"] == _INVOKED:
            ctx.actions.append(StreamNotification(row["invocation_id"], row["attempt"], index, frame))
    elif t == _OUTPUT_COMMAND:
        row["output_index"] = index
    return index


def is_awaited_present(row: Row) -> bool:
    """A V6 suspension resumes as soon as any awaited id is in the journal."""
    return (any(c in row["completed_ids"] for c in row["waiting_completions"])
            or any(s in row["signal_ids"] for s in row["waiting_signals"])
            or any(n in row["named_signals"] for n in row["waiting_named"]))


def resume_if_awaited(ctx: ApplyContext, row: Row, now_ms: int) -> None:
    if row["status"] == _SUSPENDED and is_awaited_present(row):
        start_attempt(ctx, row, now_ms)
    else:
        ctx.tables.invocations.put(row)


def outbox(ctx: ApplyContext, topic: str, partition: int, kind: str, record: Mapping[str, Any]) -> None:
    """Queue a record for another partition (or a reply topic); the leader ships it.

    The body carries (this partition, outbox sequence) so the receiver can drop a re-shipped copy.
    """
    def encode(seq: int) -> bytes:
        return codec.encode(kind, {**record, "source": {"partition": ctx.partition, "seq": seq}})

    ctx.actions.append(ShipOutbox(ctx.tables.outbox.append(topic, partition, kind, encode)))


DEFAULT_RETENTION_MS = 24 * 3600 * 1000  # workflow and idempotent outputs: a day unless the manifest says otherwise


def complete(ctx: ApplyContext, row: Row, now_ms: int, value: bytes | None,
             failure: Failure | None, retention_ms: int | None = None,
             outcome: str | None = None, journal_retention_ms: int | None = None) -> None:
    """End the invocation with a value or a failure and send the result to whoever waits for it.
    ``outcome`` (succeeded, failed, cancelled, killed; by default from ``failure``) is what it is counted as.

    A workflow run (or an idempotent invocation) keeps its output, and a workflow its state and
    promises, for its retention; then a cleanup timer forgets them, and the id may run again.
    Its journal is kept for ``journal_retention_ms`` (the handler's journalRetention), at most as long.
    """
    set_status(row, _COMPLETED, now_ms)
    row["result_value"], row["result_failure"] = value, failure
    row["completed_ms"] = now_ms
    row["waiting_completions"], row["waiting_signals"], row["waiting_named"] = [], [], []
    keeps_output = row["handler_kind"] == "WORKFLOW" or row["idempotency_key"] is not None
    status_ms = (retention_ms or DEFAULT_RETENTION_MS) if keeps_output else None
    row["completion_retention_ms"] = status_ms  # (sys_invocation.completion_retention)
    retain_journal(ctx, row, now_ms, journal_retention_ms, status_ms)
    ctx.tables.invocations.put(row)
    ctx.completed.append((ctx.offset, row["service"], row["handler"],
                          outcome or ("succeeded" if failure is None else "failed")))
    callers = ([row["caller"]] if row["caller"] else []) + row["attached_callers"]
    replies = ([row["reply_to"]] if row["reply_to"] else []) + row["attached_replies"]
    for caller in callers:
        send_result_to_caller(ctx, caller, value, failure)
    for reply in replies:
        send_reply(ctx, reply, row["invocation_id"], value, failure)
    release(ctx, row, now_ms)
    if status_ms is not None:
        set_timer(ctx, "cleanup", row["invocation_id"], now_ms + status_ms)
    else:  # forgotten by a RetentionSweep once REPRISE_COMPLETED_RETENTION_S has passed
        ctx.tables.completions.index(row["invocation_id"], now_ms)


def retain_journal(ctx: ApplyContext, row: Row, now_ms: int, journal_ms: int | None, status_ms: int | None) -> None:
    """Restate's journal retention, at completion: the journal is kept for ``journal_ms`` (0: dropped
    now), never longer than the status (``status_ms``; None: the engine-wide retention of plain
    invocations, which the leader's RetentionSweep applies). No journal retention configured: the
    journal goes with the status, and no timer is set (the common case costs nothing)."""
    if journal_ms is None:
        row["journal_retention_ms"] = status_ms  # None for a plain invocation: REPRISE_COMPLETED_RETENTION_S
        return
    if status_ms is not None and journal_ms >= status_ms:
        row["journal_retention_ms"] = status_ms  # the cleanup timer forgets the journal with the status
        return
    row["journal_retention_ms"] = journal_ms
    if journal_ms == 0:
        drop_journal(ctx, row)
    else:
        set_timer(ctx, JOURNAL_TIMER, row["invocation_id"], now_ms + journal_ms)


JOURNAL_TIMER = "journal"  # a completed invocation's journal retention ran out (apply/timer_fired.py)


def drop_journal(ctx: ApplyContext, row: Row) -> None:
    """Delete a completed invocation's journal and keep its status (its result stays in the row);
    the caller writes the row."""
    ctx.tables.journals.delete(row["invocation_id"], row["journal_length"])
    row["journal_length"], row["output_index"] = 0, None


def send_result_to_caller(ctx: ApplyContext, caller: Caller, value: bytes | None, failure: Failure | None) -> None:
    target = InvocationId.parse(caller["invocation_id"]).partition(ctx.partitions)
    outbox(ctx, "log", target, "CallCompleted", {
        "invocation_id": caller["invocation_id"], "completion_id": caller["completion_id"],
        "value": value, "failure": failure})


def send_reply(ctx: ApplyContext, reply: ReplyTo, inv: str, value: bytes | None, failure: Failure | None) -> None:
    """To the engine's replies topic (one partition), or to a Kafka client's own reply topic, where
    the record is keyed by request id and Kafka's partitioner picks the partition (-1)."""
    partition = 0 if reply["topic"] == "replies" else -1
    outbox(ctx, reply["topic"], partition, "Reply", {
        "ingress_id": reply["ingress_id"], "request_id": reply["request_id"],
        "invocation_id": inv, "value": value, "failure": failure})


def set_timer(ctx: ApplyContext, kind: str, inv: str, fire_at_ms: int, completion_id: int = 0) -> str:
    key = ctx.tables.timer_key(fire_at_ms, f"{inv}/{kind}/{completion_id}")
    ctx.tables.timers.put(key, {"kind": kind, "invocation_id": inv, "fire_at_ms": fire_at_ms,
                               "completion_id": completion_id})
    ctx.actions.append(ScheduleTimer(key, fire_at_ms))
    return key
