"""InvokerEffects: journal what one attempt produced, act on its commands, then on how it ended."""

from __future__ import annotations

from typing import Any

from reprise.engine.config import RetryPolicy
from reprise.engine.ids import InvocationId, idempotent_invocation_id, parse_awakeable_id
from reprise.engine.protocol import journal as pj
from reprise.engine.protocol.messages import MessageType
from reprise.partitions.core import lifecycle, promises
from reprise.partitions.core.actions import AbortAttempt, StreamNotification
from reprise.partitions.core.context import ApplyContext
from reprise.partitions.core.status import Status
from reprise.schemas.invoke import new_invoke
from reprise.schemas.records import Caller, Failure, InvocationStatus

_PROMISE_COMMANDS = (MessageType.GET_PROMISE_COMMAND, MessageType.PEEK_PROMISE_COMMAND,
                     MessageType.COMPLETE_PROMISE_COMMAND)
# Commands the runtime acts on (below); the rest (run, output, input...) are only journaled. One set
# lookup spares those the chain of comparisons (an IntEnum member access costs ~170 ns on Python 3.11).
# A command _on_command learns to handle must be added here too.
_ACTED_ON = frozenset(int(t) for t in (
    MessageType.SET_STATE_COMMAND, MessageType.CLEAR_STATE_COMMAND, MessageType.CLEAR_ALL_STATE_COMMAND,
    MessageType.GET_LAZY_STATE_COMMAND, MessageType.GET_LAZY_STATE_KEYS_COMMAND, MessageType.SLEEP_COMMAND,
    MessageType.CALL_COMMAND, MessageType.ONE_WAY_CALL_COMMAND, MessageType.SEND_SIGNAL_COMMAND,
    MessageType.COMPLETE_AWAKEABLE_COMMAND, *_PROMISE_COMMANDS))
_INVOKED = Status.INVOKED  # a module global: see lifecycle's


def apply_effects(ctx: ApplyContext, rec: dict[str, Any], now_ms: int) -> None:
    """An attempt's entries, then its outcome. A Progress record (a streaming attempt that goes on)
    has no outcome: the notifications it made durable are streamed back to the attempt."""
    inv = rec["invocation_id"]
    progress = "proposed" in rec["outcome"]
    if lifecycle.from_stale_leader(ctx, rec, f"effects of {inv} attempt {rec['attempt']}"):
        return
    row = ctx.tables.invocations.get(inv)
    if row is None or row["status"] != _INVOKED or row["attempt"] != rec["attempt"]:
        found = "no invocation" if row is None else f"{row['status']} attempt {row['attempt']}"
        ctx.drop(f"effects of {inv}: expected INVOKED attempt {rec['attempt']}, found {found}")
        if progress:
            ctx.actions.append(AbortAttempt(inv, rec["attempt"]))  # it would wait for notifications in vain
        return
    if rec["deployment_id"] and not row["deployment_id"]:
        row["deployment_id"] = rec["deployment_id"]  # pinned for every later attempt
    journal_ms = rec.get("journal_retention_ms")  # v3, on an attempt's last record
    if journal_ms is not None:
        row["journal_retention_ms"] = journal_ms  # as the handler's options say now: a kill applies it too
    kinds = rec["handler_kinds"]
    first_action = len(ctx.actions)
    for pos, frame in enumerate(rec["entries"]):
        index = lifecycle.append_entry(ctx, row, frame)
        if pj.frame_type(frame) in _ACTED_ON:
            _on_command(ctx, row, frame, index, kinds.get(str(pos)), now_ms)
    if rec["entries"]:
        row["failures_since_entry"], row["last_entry_ms"] = 0, now_ms
    if progress:
        ctx.tables.invocations.put(row)
        return
    # The attempt is over: nothing more is streamed to it.
    if len(ctx.actions) > first_action:
        ctx.actions[first_action:] = [a for a in ctx.actions[first_action:] if not isinstance(a, StreamNotification)]
    _on_outcome(ctx, row, rec["outcome"], now_ms, rec["completion_retention_ms"], journal_ms)


def _on_command(ctx: ApplyContext, row: InvocationStatus, frame: bytes, index: int, kind: str | None,
                now_ms: int) -> None:
    """The runtime's side of each journaled command (state, timers, calls)."""
    t = pj.frame_type(frame)
    if t in (MessageType.SET_STATE_COMMAND, MessageType.CLEAR_STATE_COMMAND,
             MessageType.CLEAR_ALL_STATE_COMMAND):
        _apply_state(ctx, row, t, pj.decode(frame))
    elif t == MessageType.GET_LAZY_STATE_COMMAND:
        msg = pj.decode(frame)
        value = ctx.tables.state.get(row["service"], row["key"], msg.key) if row["key"] is not None else None
        lifecycle.append_entry(ctx, row, pj.lazy_state_completion(msg.result_completion_id, value))
    elif t == MessageType.GET_LAZY_STATE_KEYS_COMMAND:
        msg = pj.decode(frame)
        keys = [k for k, _ in ctx.tables.state.all(row["service"], row["key"])] if row["key"] is not None else []
        lifecycle.append_entry(ctx, row, pj.lazy_state_keys_completion(msg.result_completion_id, keys))
    elif t == MessageType.SLEEP_COMMAND:
        msg = pj.decode(frame)
        lifecycle.set_timer(ctx, "sleep", row["invocation_id"], msg.wake_up_time, msg.result_completion_id)
    elif t in (MessageType.CALL_COMMAND, MessageType.ONE_WAY_CALL_COMMAND):
        _call(ctx, row, t, pj.decode(frame), index, kind)
    elif t in _PROMISE_COMMANDS:
        promises.on_promise_command(ctx, row, t, pj.decode(frame), now_ms)
    elif t == MessageType.SEND_SIGNAL_COMMAND:
        msg = pj.decode(frame)
        which = msg.WhichOneof("result")
        _send_signal(ctx, msg.target_invocation_id,
                     msg.idx if msg.WhichOneof("signal_id") == "idx" else None,
                     msg.name if msg.WhichOneof("signal_id") == "name" else None,
                     msg.value.content if which == "value" else None,
                     {"code": msg.failure.code, "message": msg.failure.message} if which == "failure" else None)
    elif t == MessageType.COMPLETE_AWAKEABLE_COMMAND:
        msg = pj.decode(frame)
        try:
            target, idx = parse_awakeable_id(msg.awakeable_id)
        except ValueError as e:
            ctx.drop(f"{row['invocation_id']}: {e}")
            return
        which = msg.WhichOneof("result")
        _send_signal(ctx, str(target), idx, None, msg.value.content if which == "value" else None,
                     {"code": msg.failure.code, "message": msg.failure.message} if which == "failure" else None)


def _send_signal(ctx: ApplyContext, target: str, idx: int | None, name: str | None, value: bytes | None,
                 failure: Failure | None) -> None:
    """Signals travel to the target's partition through the outbox, like calls."""
    try:
        partition = InvocationId.parse(target).partition(ctx.partitions)
    except ValueError as e:
        ctx.drop(f"signal to a malformed invocation id: {e}")
        return
    lifecycle.outbox(ctx, "log", partition, "Signal", {
        "invocation_id": target, "idx": idx, "name": name, "value": value, "failure": failure})


def _apply_state(ctx: ApplyContext, row: InvocationStatus, t: int, msg: Any) -> None:
    """State changes take effect as soon as they are journaled, so a retry sees its own writes."""
    if row["key"] is None:
        return  # plain services have no state; the SDK refuses before this point
    if t == MessageType.SET_STATE_COMMAND:
        ctx.tables.state.set(row["service"], row["key"], msg.key, msg.value.content)
    elif t == MessageType.CLEAR_STATE_COMMAND:
        ctx.tables.state.clear(row["service"], row["key"], msg.key)
    else:
        ctx.tables.state.clear_all(row["service"], row["key"])


def _call(ctx: ApplyContext, row: InvocationStatus, t: int, msg: Any, index: int, kind: str | None) -> None:
    """Create the child invocation on its partition and tell the caller its id at once.

    The child's id is derived from the call's position in the journal, or, with an idempotency key,
    from (target, key, idempotency key): the same request then names the same invocation.
    """
    inv = row["invocation_id"]
    key = msg.key or None
    if msg.HasField("idempotency_key"):
        child = idempotent_invocation_id(msg.service_name, key, msg.handler_name, msg.idempotency_key)
    else:
        child = InvocationId.derived(key if key is not None else f"{inv}/{index}", "call", inv, index)
    one_way = t == MessageType.ONE_WAY_CALL_COMMAND
    caller: Caller | None = None if one_way else {"invocation_id": inv, "completion_id": msg.result_completion_id}
    invoke_time = msg.invoke_time if one_way and msg.invoke_time else None
    lifecycle.outbox(ctx, "log", child.partition(ctx.partitions), "Invoke", new_invoke(
        invocation_id=str(child), service=msg.service_name, handler=msg.handler_name, key=key, handler_kind=kind,
        input=msg.parameter, headers=[{"name": h.key, "value": h.value} for h in msg.headers],
        idempotency_key=msg.idempotency_key or None, caller=caller, execute_at_ms=invoke_time,
        sender_id=inv if one_way else None))
    lifecycle.append_entry(ctx, row, pj.call_invocation_id_completion(msg.invocation_id_notification_idx,
                                                                      str(child)))


def _on_outcome(ctx: ApplyContext, row: InvocationStatus, outcome: dict[str, Any], now_ms: int,
                retention_ms: int | None, journal_retention_ms: int | None) -> None:
    if "completions" in outcome:  # Suspended
        row["waiting_completions"] = list(outcome["completions"])
        row["waiting_signals"] = list(outcome["signals"])
        row["waiting_named"] = list(outcome["named_signals"])
        if lifecycle.is_awaited_present(row):
            lifecycle.start_attempt(ctx, row, now_ms)
        else:
            lifecycle.set_status(row, Status.SUSPENDED, now_ms)
            ctx.tables.invocations.put(row)
    elif "retryable" in outcome:  # AttemptFailed
        failure: Failure = {"code": outcome["code"], "message": outcome["message"]}
        row["last_failure"] = failure
        if not outcome["retryable"] or outcome["on_exhausted"] == "KILL":
            lifecycle.complete(ctx, row, now_ms, None, failure, retention_ms,
                               journal_retention_ms=journal_retention_ms)
            return
        if outcome["on_exhausted"] == "PAUSE":
            row["failures_since_entry"] += 1
            lifecycle.set_status(row, Status.PAUSED, now_ms)
            ctx.tables.invocations.put(row)
            return
        row["failures_since_entry"] += 1
        _back_off(ctx, row, outcome["next_retry_delay_ms"] or 0, now_ms)
    else:  # Ended
        value, error = _output(ctx, row)
        lifecycle.complete(ctx, row, now_ms, value, error, retention_ms, journal_retention_ms=journal_retention_ms)


def _back_off(ctx: ApplyContext, row: InvocationStatus, delay_ms: int, now_ms: int) -> None:
    """The attempt failed: the next one runs after ``delay_ms`` (a durable retry timer)."""
    row["next_retry_ms"] = now_ms + delay_ms
    lifecycle.set_status(row, Status.BACKING_OFF, now_ms)
    ctx.tables.invocations.put(row)
    lifecycle.set_timer(ctx, "retry", row["invocation_id"], now_ms + delay_ms, row["attempt"])


def _output(ctx: ApplyContext, row: InvocationStatus) -> tuple[bytes | None, Failure | None]:
    index = row["output_index"]
    if index is None:
        return b"", None  # ended without output: an empty success, as Restate treats it
    entry = ctx.tables.journals.entry(row["invocation_id"], index)
    if entry is None:
        raise KeyError(f"{row['invocation_id']}: no journal entry {index}, which the row names as its output")
    msg = pj.decode(entry)
    if msg.HasField("failure"):
        return None, {"code": msg.failure.code, "message": msg.failure.message}
    return msg.value.content, None


REJECTED_CODE = 500  # terminal: output past a bound, which running the attempt again would produce again
VIOLATION_CODE = 571  # Restate's PROTOCOL_VIOLATION: retried, so a fixed deployment can complete it
# A violation backs off by the engine's default policy, counted by the row's failures: the handler's
# own policy is the invoker's (registry and configuration), which apply() does not see.
_VIOLATION_BACKOFF = RetryPolicy()


def fail_rejected(ctx: ApplyContext, rec: dict[str, Any], reason: str, now_ms: int, terminal: bool) -> bool:
    """Effects this module refused (and that were undone) end their attempt instead of leaving it
    INVOKED with nothing to drive it. Deterministic: it reads only the store and the record.

    Output the service could send correctly another time (a malformed command: a protocol
    violation, 571) fails the attempt and retries it with backoff, as Restate retries what it cannot
    decode; later records of the same attempt are then stale and dropped. ``terminal`` (output past
    a bound, which a retry would produce again) ends the invocation with a failure that says why.

    Returns whether the attempt was failed. For a terminal failure, waiters that cannot be told (a
    caller whose id is malformed: often why the effects were refused) are skipped, so it applies.
    """
    inv, attempt = rec.get("invocation_id"), rec.get("attempt")
    if not isinstance(inv, str) or rec.get("epoch") != ctx.tables.leadership.epoch():
        return False
    row = ctx.tables.invocations.get(inv)
    if row is None or row["status"] != _INVOKED or row["attempt"] != attempt:
        return False
    ctx.actions.append(AbortAttempt(inv, attempt))  # a streaming attempt must not go on
    if not terminal:
        row["last_failure"] = {"code": VIOLATION_CODE, "message": f"protocol violation: the engine could not "
                                                                  f"apply attempt {attempt}'s output: {reason}"}
        row["failures_since_entry"] += 1
        _back_off(ctx, row, _VIOLATION_BACKOFF.delay_ms(row["failures_since_entry"]), now_ms)
        return True
    failure: Failure = {"code": REJECTED_CODE,
                        "message": f"the engine could not apply attempt {attempt}'s output: {reason}"}
    row["last_failure"] = failure
    # a reply target (the engine's replies topic or a Kafka client's) can always be told
    row["attached_callers"] = [c for c in row["attached_callers"] if _reachable(ctx, c)]
    caller = row["caller"]
    if caller is not None and not _reachable(ctx, caller):
        ctx.drop(f"{inv}: its caller cannot be told of its failure")
        row["caller"] = None
    lifecycle.complete(ctx, row, now_ms, None, failure, None)
    return True


def _reachable(ctx: ApplyContext, caller: Caller) -> bool:
    """A calling invocation's id routes to a partition (a malformed one is often why effects were refused)."""
    try:
        InvocationId.parse(caller["invocation_id"]).partition(ctx.partitions)
    except ValueError:
        return False
    return True
