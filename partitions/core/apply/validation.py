"""Every record kind's checks, run before its handler touches the store.

The log topic can carry records no engine wrote: a forged one from an outside producer, or garbage
from a bug. Each kind's validator checks what a correct engine always writes: ids well-formed and
routed to this partition, numbers in the range the engine uses, strings within their bounds and
enums within their sets. A record that fails raises ``RejectedRecord`` with a ``Rejection`` kind;
apply_batch undoes it and the processor dead-letters and counts it. The checks read the record and
at most a value or two of the store (the epoch, the outbox's next sequence), so they cost O(1) per
record (O(entries) for an attempt's effects, as applying them does), and a replay decides the same.

What depends on an invocation's row (a completion its journal holds already) is checked by the
kind's handler, after it read the row and before it writes.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import Any

from reprise.engine import schedules as schedule_spec
from reprise.engine.ids import PREFIX, InvocationId
from reprise.engine.partitioning import partition_for_key
from reprise.partitions.core.context import ApplyContext
from reprise.partitions.core.errors import RejectedRecord, Rejection

Record = dict[str, Any]
Validator = Callable[[ApplyContext, Record], None]

MAX_NAME_CHARS = 1_024  # service, handler, signal and owner names, deployment ids
# Object keys and idempotency keys: what the ingress's request head (64 KiB) can carry. Also what
# bounds a record's hashing: murmur2 in Python costs ~17 ms for 64 KiB, ~1 s for 4 MiB.
MAX_KEY_CHARS = 64 * 1_024
MAX_TIME_MS = 10**15 - 1  # timer keys hold 15 digits of milliseconds (the year 33658)
MAX_U32 = 2**32 - 1  # completion ids and signal indexes are protobuf uint32
# A real claim is at most one above the epoch it was refused at; a leap past this is not a claim
# (and a claim at the top of the long range would leave nobody room to claim above it).
MAX_EPOCH_STEP = 1_000
MAX_SWEEP_LIMIT = 100_000  # invocations one RetentionSweep may forget (the leader asks 5,000)
MAX_AWAITED = 65_536  # ids one suspension may wait on
# a subscription's id: Restate's form (sub_1 and 22 base62 digits) or an older Reprise's (20 hex digits)
is_subscription_id = re.compile(r"sub_[0-9A-Za-z]{20,23}").fullmatch
HANDLER_KINDS = frozenset((None, "EXCLUSIVE", "SHARED", "WORKFLOW"))
ATTACH_MODES = frozenset(("attach", "output"))
_FRAME_HEADER = struct.Struct(">HHI")
_FIRST_JOURNAL_TYPE = 0x0400  # below: control messages (Start, End, Suspension...), never journaled
_B62 = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")}


def reject(reason: Rejection, message: str) -> RejectedRecord:
    return RejectedRecord(message, reason)


# fields -------------------------------------------------------------------------------------------
def own_invocation(ctx: ApplyContext, text: str, what: str) -> None:
    """An id in Restate's form whose partition key routes here. Only the partition key is decoded
    (11 base62 digits); an id that creates an invocation is parsed whole (``new_invocation``)."""
    if len(text) != 38 or not text.startswith(PREFIX):
        raise reject(Rejection.MALFORMED, f"{what} {text[:64]!r}: expected 'inv_1' and 33 base62 chars")
    pk = 0
    try:
        for c in text[5:16]:
            pk = pk * 62 + _B62[c]
    except KeyError:
        raise reject(Rejection.MALFORMED, f"{what} {text!r}: not base62") from None
    if pk % ctx.partitions != ctx.partition:
        raise reject(Rejection.WRONG_PARTITION,
                     f"{what} {text} belongs to partition {pk % ctx.partitions}, found on {ctx.partition}")


def any_invocation(text: str, what: str) -> InvocationId:
    """A well-formed id of any partition whose parts fit their 8 and 16 bytes."""
    try:
        iid = InvocationId.parse(text)
    except ValueError as e:
        raise reject(Rejection.MALFORMED, f"{what}: {e}") from None
    if iid.pk >= 1 << 64 or iid.uuid >= 1 << 128:
        raise reject(Rejection.MALFORMED, f"{what} {text}: expected a 64-bit partition key and a 128-bit uuid")
    return iid


def name(value: str | None, what: str, required: bool = True, limit: int = MAX_NAME_CHARS) -> None:
    if value is None or value == "":
        if required:
            raise reject(Rejection.MALFORMED, f"{what}: expected a non-empty string, found {value!r}")
        return
    if len(value) > limit:
        raise reject(Rejection.TOO_LARGE, f"{what}: expected at most {limit} characters, found {len(value)}")


def in_range(value: int, low: int, high: int, what: str) -> None:
    if not low <= value <= high:
        raise reject(Rejection.OUT_OF_RANGE, f"{what}: expected {low}..{high}, found {value}")


def source(ctx: ApplyContext, src: Record | None) -> None:
    """(partition, seq) of an outbox copy: the receiver's duplicate filter keeps the highest seq."""
    if src is not None:
        in_range(src["partition"], 0, ctx.partitions - 1, "source partition")
        in_range(src["seq"], 0, 2**63 - 1, "source seq")


def caller(c: Record | None) -> None:
    if c is not None:
        any_invocation(c["invocation_id"], "caller")
        in_range(c["completion_id"], 0, MAX_U32, "caller completion id")


def failure(f: Record | None, what: str) -> None:
    if f is not None:
        in_range(f["code"], 0, 2**31 - 1, f"{what} code")  # a protobuf uint32 in the journal


def frame(raw: bytes, pos: int) -> None:
    """One framed protocol message: a header whose length is the rest, of a journaled type."""
    if len(raw) < _FRAME_HEADER.size:
        raise reject(Rejection.MALFORMED, f"entry {pos}: expected an 8-byte frame header, found {len(raw)} bytes")
    t, _flags, length = _FRAME_HEADER.unpack_from(raw)
    if _FRAME_HEADER.size + length != len(raw):
        raise reject(Rejection.MALFORMED, f"entry {pos}: header says {length} payload bytes, found "
                                          f"{len(raw) - _FRAME_HEADER.size}")
    if t < _FIRST_JOURNAL_TYPE:
        raise reject(Rejection.MALFORMED, f"entry {pos}: message type 0x{t:04x} is not a command or notification")


# kinds --------------------------------------------------------------------------------------------
def invoke(ctx: ApplyContext, rec: Record) -> None:
    name(rec["service"], "Invoke service")
    name(rec["handler"], "Invoke handler")
    if rec["handler_kind"] not in HANDLER_KINDS:
        raise reject(Rejection.UNKNOWN_VALUE, f"Invoke handler_kind {str(rec['handler_kind'])[:64]!r}: "
                                              f"expected EXCLUSIVE, SHARED, WORKFLOW or none")
    key = rec["key"]
    if key is not None:
        name(key, "Invoke key", required=False, limit=MAX_KEY_CHARS)
        # An object's state lives on its key's partition: a key routed elsewhere would split it
        routed = partition_for_key(key, ctx.partitions)
        if routed != ctx.partition:
            raise reject(Rejection.WRONG_PARTITION,
                         f"Invoke key {key[:64]!r} belongs to partition {routed}, found on {ctx.partition}")
    if rec["invocation_id"]:  # it becomes a row: parsed whole, not only its partition key
        iid = any_invocation(rec["invocation_id"], "Invoke invocation")
        if iid.partition(ctx.partitions) != ctx.partition:
            raise reject(Rejection.WRONG_PARTITION, f"Invoke invocation {rec['invocation_id']} belongs to partition "
                                                    f"{iid.partition(ctx.partitions)}, found on {ctx.partition}")
    name(rec["idempotency_key"], "Invoke idempotency key", required=False, limit=MAX_KEY_CHARS)
    caller(rec["caller"])
    sender = rec.get("sender_id")  # v2: an invocation's one-way send, or a subscription's record
    if sender is not None and not is_subscription_id(sender):
        any_invocation(sender, "Invoke sender")
    if rec["execute_at_ms"] is not None:
        in_range(rec["execute_at_ms"], 0, MAX_TIME_MS, "Invoke execute_at_ms")
    source(ctx, rec["source"])


def invoker_effects(ctx: ApplyContext, rec: Record) -> None:
    own_invocation(ctx, rec["invocation_id"], "InvokerEffects invocation")
    in_range(rec["attempt"], 1, 2**31 - 1, "InvokerEffects attempt")
    in_range(rec["epoch"], 0, 2**63 - 1, "InvokerEffects epoch")
    name(rec["deployment_id"], "InvokerEffects deployment id", required=False)
    entries = rec["entries"]
    for pos, raw in enumerate(entries):
        frame(raw, pos)
    for pos, kind in rec["handler_kinds"].items():
        if not (pos.isascii() and pos.isdigit() and len(pos) <= 10) or int(pos) >= len(entries):
            raise reject(Rejection.OUT_OF_RANGE, f"handler_kinds position {pos[:16]!r}: expected one of the "
                                                 f"{len(entries)} entries")
        if kind not in HANDLER_KINDS:
            raise reject(Rejection.UNKNOWN_VALUE, f"handler_kinds[{pos}] {kind[:64]!r}: expected EXCLUSIVE, "
                                                  f"SHARED or WORKFLOW")
    if rec["completion_retention_ms"] is not None:
        in_range(rec["completion_retention_ms"], 0, MAX_TIME_MS, "completion_retention_ms")
    if rec.get("journal_retention_ms") is not None:  # v3
        in_range(rec["journal_retention_ms"], 0, MAX_TIME_MS, "journal_retention_ms")
    outcome = rec["outcome"]
    if "completions" in outcome:  # Suspended
        for ids, what in ((outcome["completions"], "completion"), (outcome["signals"], "signal")):
            if len(ids) > MAX_AWAITED:
                raise reject(Rejection.TOO_LARGE, f"suspended on {len(ids)} {what} ids: at most {MAX_AWAITED}")
            for i in ids:
                in_range(i, 0, MAX_U32, f"awaited {what} id")
        if len(outcome["named_signals"]) > MAX_AWAITED:
            raise reject(Rejection.TOO_LARGE, f"suspended on {len(outcome['named_signals'])} named signals")
    elif "retryable" in outcome:  # AttemptFailed
        in_range(outcome["code"], 0, 2**31 - 1, "AttemptFailed code")
        if outcome["next_retry_delay_ms"] is not None:
            in_range(outcome["next_retry_delay_ms"], 0, MAX_TIME_MS, "next_retry_delay_ms")
    elif "proposed" in outcome:  # Progress
        for i in outcome["proposed"]:
            in_range(i, 0, MAX_U32, "proposed run completion id")


def timer_fired(ctx: ApplyContext, rec: Record) -> None:
    """The key of a row in the timer table (``tm/`` + 15 digits + ``/`` + id): a key of another
    table would make apply() read and delete a row that is no timer."""
    key = rec["timer_key"]
    digits = key[3:18]
    if (len(key) > 19 + 2 * MAX_NAME_CHARS or not key.startswith("tm/") or not digits.isascii()
            or not digits.isdigit() or len(digits) != 15 or key[18:19] != "/"):
        raise reject(Rejection.MALFORMED, f"timer key {key[:64]!r}: expected 'tm/', 15 digits, '/' and an id")
    in_range(rec["epoch"], 0, 2**63 - 1, "TimerFired epoch")


def call_completed(ctx: ApplyContext, rec: Record) -> None:
    own_invocation(ctx, rec["invocation_id"], "CallCompleted caller")
    in_range(rec["completion_id"], 0, MAX_U32, "CallCompleted completion id")
    if rec["value"] is not None and rec["failure"] is not None:
        raise reject(Rejection.MALFORMED, "CallCompleted carries both a value and a failure")
    failure(rec["failure"], "CallCompleted failure")
    source(ctx, rec["source"])


def leader_epoch(ctx: ApplyContext, rec: Record) -> None:
    if rec["partition"] != ctx.partition:
        raise reject(Rejection.WRONG_PARTITION, f"LeaderEpoch for partition {rec['partition']}, "
                                                f"found on {ctx.partition}")
    name(rec["owner"], "LeaderEpoch owner")
    in_range(rec["epoch"], 1, ctx.tables.leadership.epoch() + MAX_EPOCH_STEP, "LeaderEpoch epoch")


def outbox_shipped(ctx: ApplyContext, rec: Record) -> None:
    """Up to an entry the outbox has written: past it, truncating would walk sequences that never were."""
    in_range(rec["epoch"], 0, 2**63 - 1, "OutboxShipped epoch")
    in_range(rec["up_to_seq"], -1, ctx.tables.outbox.next() - 1, "OutboxShipped up_to_seq")


def signal(ctx: ApplyContext, rec: Record) -> None:
    own_invocation(ctx, rec["invocation_id"], "Signal invocation")
    if (rec["idx"] is None) == (rec["name"] is None):
        raise reject(Rejection.MALFORMED, "Signal: expected exactly one of idx and name")
    if rec["idx"] is not None:
        in_range(rec["idx"], 0, MAX_U32, "Signal idx")
    else:
        name(rec["name"], "Signal name")
    if rec["value"] is not None and rec["failure"] is not None:
        raise reject(Rejection.MALFORMED, "Signal carries both a value and a failure")
    failure(rec["failure"], "Signal failure")
    source(ctx, rec["source"])


def admin_command(ctx: ApplyContext, rec: Record) -> None:
    own_invocation(ctx, rec["invocation_id"], "AdminCommand invocation")
    name(rec["command"], "AdminCommand command", required=False)  # an unknown one is answered with 400
    if rec.get("restart_from") is not None:  # v2
        in_range(rec["restart_from"], 0, MAX_U32, "AdminCommand restart_from")
    name(rec.get("restart_deployment"), "AdminCommand restart_deployment", required=False)


def attach(ctx: ApplyContext, rec: Record) -> None:
    own_invocation(ctx, rec["invocation_id"], "Attach invocation")
    if rec["mode"] not in ATTACH_MODES:
        raise reject(Rejection.UNKNOWN_VALUE, f"Attach mode {rec['mode'][:64]!r}: expected attach or output")


def retention_sweep(ctx: ApplyContext, rec: Record) -> None:
    in_range(rec["epoch"], 0, 2**63 - 1, "RetentionSweep epoch")
    in_range(rec["before_ms"], 0, MAX_TIME_MS, "RetentionSweep before_ms")
    in_range(rec["limit"], 1, MAX_SWEEP_LIMIT, "RetentionSweep limit")


def schedule_command(ctx: ApplyContext, rec: Record) -> None:
    """What the admin API writes: an id of this partition, a known op, and for create a cron
    expression that parses in a known zone, a known catch-up policy, a target and a bounded body."""
    sid = rec["schedule_id"]
    try:
        schedule_spec.check_id(sid)
    except schedule_spec.ScheduleError as e:
        raise reject(Rejection.MALFORMED, str(e)) from None
    owner = schedule_spec.owner_partition(sid, ctx.partitions)
    if owner != ctx.partition:
        raise reject(Rejection.WRONG_PARTITION,
                     f"schedule {sid} belongs to partition {owner}, found on {ctx.partition}")
    if rec["op"] not in schedule_spec.OPS:
        raise reject(Rejection.UNKNOWN_VALUE, f"ScheduleCommand op {rec['op'][:64]!r}: expected one of "
                                              f"{', '.join(schedule_spec.OPS)}")
    if rec["op"] != "create":
        return
    if rec["catch_up"] not in schedule_spec.CATCH_UP:
        raise reject(Rejection.UNKNOWN_VALUE, f"ScheduleCommand catch_up {rec['catch_up'][:64]!r}: expected skip, "
                                              f"once or all")
    if rec["handler_kind"] not in HANDLER_KINDS:
        raise reject(Rejection.UNKNOWN_VALUE, f"ScheduleCommand handler_kind {str(rec['handler_kind'])[:64]!r}: "
                                              f"expected EXCLUSIVE, SHARED, WORKFLOW or none")
    name(rec["service"], "ScheduleCommand service")
    name(rec["handler"], "ScheduleCommand handler")
    name(rec["key"], "ScheduleCommand key", required=rec["handler_kind"] is not None, limit=MAX_KEY_CHARS)
    if len(rec["input"]) > schedule_spec.MAX_BODY_BYTES:
        raise reject(Rejection.TOO_LARGE, f"ScheduleCommand body: expected at most {schedule_spec.MAX_BODY_BYTES} "
                                          f"bytes, found {len(rec['input'])}")
    if rec["cron"] is None:
        raise reject(Rejection.MALFORMED, "ScheduleCommand create: expected a cron expression, found none")
    try:  # parsed at a fixed time: the record alone decides, as on every replay
        schedule_spec.check_cron(rec["cron"], rec["timezone"], 0)
    except schedule_spec.ScheduleError as e:
        raise reject(Rejection.MALFORMED, str(e)) from None


def state_mutation(ctx: ApplyContext, rec: Record) -> None:
    """A service name, and a key routed to this partition (an object's state lives on its key's)."""
    name(rec["service"], "StateMutation service")
    name(rec["key"], "StateMutation key", required=False, limit=MAX_KEY_CHARS)
    routed = partition_for_key(rec["key"], ctx.partitions)
    if routed != ctx.partition:
        raise reject(Rejection.WRONG_PARTITION,
                     f"StateMutation key {rec['key'][:64]!r} belongs to partition {routed}, found on {ctx.partition}")
    if rec["version"] is not None and len(rec["version"]) > MAX_NAME_CHARS:
        raise reject(Rejection.TOO_LARGE, f"StateMutation version: expected at most {MAX_NAME_CHARS} chars")
    for state_name in rec["state"]:
        name(state_name, "StateMutation state name", required=False, limit=MAX_KEY_CHARS)


# One per kind apply() handles on the log (tests/unit/test_apply_validation.py checks none is missing).
VALIDATORS: dict[str, Validator] = {
    "Invoke": invoke, "InvokerEffects": invoker_effects, "TimerFired": timer_fired,
    "CallCompleted": call_completed, "LeaderEpoch": leader_epoch, "OutboxShipped": outbox_shipped,
    "Signal": signal, "AdminCommand": admin_command, "Attach": attach, "RetentionSweep": retention_sweep,
    "ScheduleCommand": schedule_command, "StateMutation": state_mutation,
}
