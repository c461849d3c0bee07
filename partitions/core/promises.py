"""Durable promises of workflows: the first completion wins, waiters on the same key are woken."""

from __future__ import annotations

from typing import Any

from reprise.engine.protocol import journal as pj
from reprise.engine.protocol.messages import MessageType
from reprise.partitions.core import lifecycle
from reprise.partitions.core.context import ApplyContext
from reprise.schemas.records import Failure, InvocationStatus

Row = InvocationStatus  # an invocation's status row (schemas/storage/invocation_status.v1.avsc)


def on_promise_command(ctx: ApplyContext, row: Row, t: int, msg: Any, now_ms: int) -> None:
    """GetPromise, PeekPromise and CompletePromise, for the workflow (service, id) of ``row``."""
    if row["key"] is None:
        lifecycle.append_entry(ctx, row, _result(t, msg.result_completion_id, None,
                                                 {"code": 400, "message": "promises exist only in workflows"}))
        return
    service, key, name = row["service"], row["key"], msg.key
    current = ctx.tables.promises.get(service, key, name)
    cid = msg.result_completion_id
    if t == MessageType.GET_PROMISE_COMMAND:
        if current is None:
            ctx.tables.promises.add_waiter(service, key, name, row["invocation_id"], cid)
        else:
            lifecycle.append_entry(ctx, row, _result(t, cid, *current))
    elif t == MessageType.PEEK_PROMISE_COMMAND:
        lifecycle.append_entry(ctx, row, pj.promise_notification(MessageType.PEEK_PROMISE_COMPLETION, cid,
                                                                 *(current or (None, None)), void_if_empty=True))
    else:
        if current is not None:
            lifecycle.append_entry(ctx, row, pj.promise_notification(
                MessageType.COMPLETE_PROMISE_COMPLETION, cid, None,
                {"code": 409, "message": "promise was already completed"}))
            return
        which = msg.WhichOneof("completion")
        value = msg.completion_value.content if which == "completion_value" else None
        failure: Failure | None = ({"code": msg.completion_failure.code, "message": msg.completion_failure.message}
                   if which == "completion_failure" else None)
        ctx.tables.promises.complete(service, key, name, value, failure)
        lifecycle.append_entry(ctx, row, pj.promise_notification(MessageType.COMPLETE_PROMISE_COMPLETION, cid,
                                                                 None, None, void_if_empty=True))
        for inv, waiter_cid in ctx.tables.promises.take_waiters(service, key, name):
            _wake(ctx, row, inv, waiter_cid, value, failure, now_ms)


def _result(t: int, cid: int, value: bytes | None, failure: Failure | None) -> bytes:
    return pj.promise_notification(MessageType.GET_PROMISE_COMPLETION, cid, value, failure)


def _wake(ctx: ApplyContext, completer: Row, inv: str, cid: int, value: bytes | None, failure: Failure | None,
          now_ms: int) -> None:
    frame = _result(MessageType.GET_PROMISE_COMMAND, cid, value, failure)
    if inv == completer["invocation_id"]:
        lifecycle.append_entry(ctx, completer, frame)
        return
    waiter = ctx.tables.invocations.get(inv)
    if waiter is None or waiter["status"] == "COMPLETED":
        return
    lifecycle.append_entry(ctx, waiter, frame)
    lifecycle.resume_if_awaited(ctx, waiter, now_ms)
