"""The hot kinds' checks in one pass for the records an engine writes; anything else gets the full checks.

``validation.py`` holds every kind's checks, one call per field, each saying what it expected when it
refuses. On the common records (an Invoke, an attempt's effects, an OutboxShipped) those calls cost
about as much as applying the record. Each validator here asks the same questions as one expression
of plain comparisons and returns when every answer is yes; when any is no, it runs the full checks,
which then refuse the record with their reason (or pass it: the full checks decide, never this
module). So this module must only ever be stricter than ``validation.py``: every record it passes,
the full checks pass too (``tests/unit/test_validation_fast.py`` holds it to that on crafted records).

Invocation ids here are checked as text: base62's alphabet is ASCII's letters and digits in ASCII
order, so a fixed-width number is below a bound exactly when its digits sort below the bound's.
"""

from __future__ import annotations

import re
import struct

from reprise.engine.ids import _ALPHABET, PREFIX, _b62
from reprise.engine.partitioning import partition_key
from reprise.partitions.core.apply import validation as full
from reprise.partitions.core.apply.validation import (
    HANDLER_KINDS,
    MAX_AWAITED,
    MAX_KEY_CHARS,
    MAX_NAME_CHARS,
    MAX_TIME_MS,
    MAX_U32,
    Record,
    Validator,
    is_subscription_id,
)
from reprise.partitions.core.context import ApplyContext

MAX_I32 = 2**31 - 1
MAX_I64 = 2**63 - 1
_PK_END = _b62(2**64, 11)  # the first 11-digit partition key past 64 bits
_UUID_END = _b62(2**128, 22)  # the first 22-digit uuid past 128 bits
_DIGIT = {c: i for i, c in enumerate(_ALPHABET)}
_ID_FORM = re.compile(r"inv_1[0-9A-Za-z]{33}").fullmatch  # base62's digits are ASCII's letters and digits
_HEADER = struct.Struct(">HHI").unpack_from  # a framed protocol message: type, flags, payload length
_FIRST_JOURNAL_TYPE = 0x0400
# Partition keys already worked out, each a pure function of its text (so a replay gets the same
# answers), dropped whole when full: a bounded memory. An invocation's id comes back in each of its
# records (decoding its 11 digits costs as much as the rest of an effects record's checks); an object's
# key in each call to it (murmur2 in Python costs a few µs a key).
_ID_PARTITION_KEYS: dict[str, int] = {}
_PARTITION_KEYS: dict[str, int] = {}
_MEMO_KEY_CHARS = 256
_MEMO_ENTRIES = 16_384


def _partition_key(text: str) -> int | None:
    """The partition key of an id of 38 characters that starts 'inv_1' and whose next 11 characters
    are base62 digits, else None."""
    pk = _ID_PARTITION_KEYS.get(text)
    if pk is None:
        if len(text) != 38 or not text.startswith(PREFIX):
            return None
        pk = 0
        try:
            for c in text[5:16]:
                pk = pk * 62 + _DIGIT[c]
        except KeyError:
            return None
        if len(_ID_PARTITION_KEYS) >= _MEMO_ENTRIES:
            _ID_PARTITION_KEYS.clear()
        _ID_PARTITION_KEYS[text] = pk
    return pk


def _here(ctx: ApplyContext, text: str) -> bool:
    """What ``validation.own_invocation`` accepts."""
    pk = _partition_key(text)
    return pk is not None and pk % ctx.partitions == ctx.partition


def _well_formed(text: str) -> bool:
    """What ``validation.any_invocation`` accepts: 'inv_1', 33 base62 digits, 64- and 128-bit parts."""
    return _ID_FORM(text) is not None and text[5:16] < _PK_END and text[16:] < _UUID_END


def _new_here(ctx: ApplyContext, text: str) -> bool:
    """What ``validation.any_invocation`` accepts, routed here: the id of a new invocation."""
    if _ID_FORM(text) is None or text[16:] >= _UUID_END:
        return False
    pk = _partition_key(text)
    return pk is not None and pk < 2**64 and pk % ctx.partitions == ctx.partition


def _key_routes_here(ctx: ApplyContext, key: str) -> bool:
    pk = _PARTITION_KEYS.get(key)
    if pk is None:
        pk = partition_key(key)
        if len(key) <= _MEMO_KEY_CHARS:
            if len(_PARTITION_KEYS) >= _MEMO_ENTRIES:
                _PARTITION_KEYS.clear()
            _PARTITION_KEYS[key] = pk
    return pk % ctx.partitions == ctx.partition


def invoke(ctx: ApplyContext, rec: Record) -> None:
    service, handler, key, inv = rec["service"], rec["handler"], rec["key"], rec["invocation_id"]
    idempotency_key, caller, at, src = rec["idempotency_key"], rec["caller"], rec["execute_at_ms"], rec["source"]
    if (service and handler and len(service) <= MAX_NAME_CHARS and len(handler) <= MAX_NAME_CHARS
            and rec["handler_kind"] in HANDLER_KINDS
            and (key is None or (len(key) <= MAX_KEY_CHARS and _key_routes_here(ctx, key)))
            and (not inv or _new_here(ctx, inv))
            and (idempotency_key is None or len(idempotency_key) <= MAX_KEY_CHARS)
            and (caller is None or (0 <= caller["completion_id"] <= MAX_U32 and _well_formed(caller["invocation_id"])))
            and (at is None or 0 <= at <= MAX_TIME_MS)
            and (src is None or (0 <= src["partition"] < ctx.partitions and 0 <= src["seq"] <= MAX_I64))
            and ((sender := rec.get("sender_id")) is None or _well_formed(sender) or is_subscription_id(sender))):
        return
    full.invoke(ctx, rec)


def _ids_ok(ids: list[int]) -> bool:
    if len(ids) > MAX_AWAITED:
        return False
    for i in ids:  # mostly one or none
        if not 0 <= i <= MAX_U32:
            return False
    return True


def _handler_kinds_ok(kinds: dict[str, str], entries: int) -> bool:
    for pos, kind in kinds.items():
        if not (pos.isascii() and pos.isdigit() and len(pos) <= 10 and int(pos) < entries and kind in HANDLER_KINDS):
            return False
    return True


def invoker_effects(ctx: ApplyContext, rec: Record) -> None:
    inv, deployment, entries, retention, outcome, kinds = (
        rec["invocation_id"], rec["deployment_id"], rec["entries"], rec["completion_retention_ms"], rec["outcome"],
        rec["handler_kinds"])
    journal = rec.get("journal_retention_ms")  # v3
    if (_here(ctx, inv) and 1 <= rec["attempt"] <= MAX_I32 and 0 <= rec["epoch"] <= MAX_I64
            and (deployment is None or len(deployment) <= MAX_NAME_CHARS)
            and (retention is None or 0 <= retention <= MAX_TIME_MS)
            and (journal is None or 0 <= journal <= MAX_TIME_MS)
            and (not kinds or _handler_kinds_ok(kinds, len(entries)))):
        for raw in entries:  # each a framed journal message (validation.frame)
            if len(raw) < 8:
                break
            t, _flags, length = _HEADER(raw)
            if length + 8 != len(raw) or t < _FIRST_JOURNAL_TYPE:
                break
        else:
            if "completions" in outcome:  # Suspended
                if (_ids_ok(outcome["completions"]) and _ids_ok(outcome["signals"])
                        and len(outcome["named_signals"]) <= MAX_AWAITED):
                    return
            elif "retryable" in outcome:  # AttemptFailed
                delay = outcome["next_retry_delay_ms"]
                if 0 <= outcome["code"] <= MAX_I32 and (delay is None or 0 <= delay <= MAX_TIME_MS):
                    return
            elif "proposed" not in outcome or _ids_ok(outcome["proposed"]):  # Progress, or the attempt's end
                return
    full.invoker_effects(ctx, rec)


def call_completed(ctx: ApplyContext, rec: Record) -> None:
    inv, failure, src = rec["invocation_id"], rec["failure"], rec["source"]
    if (_here(ctx, inv) and 0 <= rec["completion_id"] <= MAX_U32
            and (failure is None or (rec["value"] is None and 0 <= failure["code"] <= MAX_I32))
            and (src is None or (0 <= src["partition"] < ctx.partitions and 0 <= src["seq"] <= MAX_I64))):
        return
    full.call_completed(ctx, rec)


def outbox_shipped(ctx: ApplyContext, rec: Record) -> None:
    if 0 <= rec["epoch"] <= MAX_I64 and -1 <= rec["up_to_seq"] < ctx.tables.outbox.next():
        return
    full.outbox_shipped(ctx, rec)


# The kinds not above are rarer (or their checks one expression already): the full checks serve them.
VALIDATORS: dict[str, Validator] = {
    **full.VALIDATORS, "Invoke": invoke, "InvokerEffects": invoker_effects, "CallCompleted": call_completed,
    "OutboxShipped": outbox_shipped,
}
