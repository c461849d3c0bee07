"""The one constructor of the Invoke record (invoke.v2.avsc), used by every producer of one: the HTTP
ingress and the commands router, subscriptions, and apply() for a handler's calls."""

from __future__ import annotations

from collections.abc import Sequence

from reprise.schemas.records import Caller, Header, Invoke, ReplyTo, Source


def new_invoke(*, invocation_id: str, service: str, handler: str, key: str | None = None,
               handler_kind: str | None = None, input: bytes = b"", headers: Sequence[Header] = (),
               idempotency_key: str | None = None, caller: Caller | None = None, reply_to: ReplyTo | None = None,
               ack_to: ReplyTo | None = None, execute_at_ms: int | None = None, created_ms: int = 0,
               source: Source | None = None, sender_id: str | None = None) -> Invoke:
    """An Invoke with every field of the schema (the schema's defaults where not given)."""
    return {"invocation_id": invocation_id, "service": service, "handler": handler, "key": key,
            "handler_kind": handler_kind, "input": input, "headers": list(headers),
            "idempotency_key": idempotency_key, "caller": caller, "reply_to": reply_to, "ack_to": ack_to,
            "execute_at_ms": execute_at_ms, "created_ms": created_ms, "source": source, "sender_id": sender_id}
