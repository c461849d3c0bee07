"""Invoke: create an invocation, start it now or schedule it for later."""

from __future__ import annotations

from typing import Any

from reprise.engine.ids import InvocationId
from reprise.engine.partitioning import partition_key
from reprise.engine.protocol import journal as pj
from reprise.partitions.core import lifecycle
from reprise.partitions.core.apply.attach import add_waiter
from reprise.partitions.core.context import ApplyContext
from reprise.partitions.core.status import Status
from reprise.schemas.records import Failure, InvocationStatus


def invocation_id_for(ctx: ApplyContext, rec: dict[str, Any]) -> str:
    """The record's id, or one derived from its position in the log (deterministic on replay).
    Either routes to this partition: validation.invoke refused an id or a key routed elsewhere."""
    if rec["invocation_id"]:
        return rec["invocation_id"]
    pk = partition_key(rec["key"]) if rec["key"] is not None else ctx.partition
    return str(InvocationId(pk, InvocationId.derived("", "log", ctx.partition, ctx.offset).uuid))


def apply_invoke(ctx: ApplyContext, rec: dict[str, Any], now_ms: int) -> None:
    if lifecycle.is_duplicate(ctx, rec, "Invoke"):
        return
    inv = invocation_id_for(ctx, rec)
    existing = ctx.tables.invocations.get(inv)
    if existing is not None:
        _attach(ctx, existing, rec)
        return
    row = lifecycle.new_row(inv, rec["service"], rec["handler"], rec["key"], rec["handler_kind"], now_ms,
                            idempotency_key=rec["idempotency_key"], caller=rec["caller"], reply_to=rec["reply_to"],
                            sender_id=rec.get("sender_id"))  # (v2)
    if rec["ack_to"] is not None:
        lifecycle.send_reply(ctx, rec["ack_to"], inv, b"Accepted", None)
    headers = [(h["name"], h["value"]) for h in rec["headers"]]
    lifecycle.append_entry(ctx, row, pj.input_command(headers, rec["input"]))
    execute_at = rec["execute_at_ms"]
    if execute_at is not None and execute_at > now_ms:
        lifecycle.set_status(row, Status.SCHEDULED, now_ms)
        ctx.tables.invocations.put(row)
        lifecycle.set_timer(ctx, "invoke", inv, execute_at)
        return
    lifecycle.admit(ctx, row, now_ms)


def _attach(ctx: ApplyContext, row: InvocationStatus, rec: dict[str, Any]) -> None:
    """The same invocation again (same id: same idempotency key): its caller gets the one result."""
    inv = row["invocation_id"]
    caller, reply = rec["caller"], rec["reply_to"]
    if rec["ack_to"] is not None:
        lifecycle.send_reply(ctx, rec["ack_to"], inv, b"PreviouslyAccepted", None)
    if row["handler_kind"] == "WORKFLOW":
        refusal: Failure = {"code": 409, "message": f"the workflow {row['service']}/{row['key']} was already invoked"}
        if caller is not None:
            lifecycle.send_result_to_caller(ctx, caller, None, refusal)
        if reply is not None:
            lifecycle.send_reply(ctx, reply, inv, None, refusal)
        return
    if caller is None and reply is None:
        ctx.drop(f"Invoke {inv}: invocation exists")
        return
    if row["status"] == Status.COMPLETED.value:
        value, failure = row["result_value"], row["result_failure"]
        if caller is not None:
            lifecycle.send_result_to_caller(ctx, caller, value, failure)
        if reply is not None:
            lifecycle.send_reply(ctx, reply, inv, value, failure)
        return
    if caller is not None and caller not in row["attached_callers"] and caller != row["caller"]:
        row["attached_callers"].append(caller)
    if reply is not None:
        add_waiter(ctx, row, reply)
    ctx.tables.invocations.put(row)
