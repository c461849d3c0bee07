"""apply() for StateMutation: an operator replaces an object key's state (POST /services/{s}/state)."""

from __future__ import annotations

from typing import Any

import orjson

from reprise.engine.ids import InvocationId
from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import encode_message
from reprise.engine.state_version import state_version
from reprise.partitions.core.actions import RunAttempt
from tests.unit.apply_helpers import Partition, invoke, new_partition, outbox_records, output


def mutate(p: Partition, state: dict[str, bytes], version: str | None = None, request: str = "r1") -> None:
    p.feed("StateMutation", {"service": "Svc", "key": "k", "version": version, "state": state,
                             "reply_to": {"topic": "replies", "ingress_id": "admin", "request_id": request}})


def answer(p: Partition, request: str) -> tuple[int, str]:
    reply = next(v for kind, v in outbox_records(p) if kind == "Reply" and v["request_id"] == request)
    if reply["failure"] is not None:
        return reply["failure"]["code"], reply["failure"]["message"]
    body: dict[str, Any] = orjson.loads(reply["value"])
    return body["code"], body["message"]


def state(p: Partition) -> dict[bytes, bytes]:
    return dict(p.tables.state.all("Svc", "k"))


def test_the_new_state_replaces_the_whole_state_of_the_key() -> None:
    p = new_partition()
    mutate(p, {"a": b"1", "b": b"2"}, request="first")
    assert answer(p, "first")[0] == 202 and state(p) == {b"a": b"1", b"b": b"2"}
    mutate(p, {"b": b"3", "c": b"4"}, request="second")
    assert answer(p, "second")[0] == 202 and state(p) == {b"b": b"3", b"c": b"4"}  # "a" is gone
    mutate(p, {}, request="third")
    assert answer(p, "third")[0] == 202 and state(p) == {}
    assert p.tables.state.all("Svc", "other") == []


def test_a_version_is_restates_hash_and_a_stale_one_changes_nothing() -> None:
    p = new_partition()
    mutate(p, {"count": b"1"}, request="set")
    # Restate's StateMutationVersion of {"count": "1"}: SHA-256 over (index, 0x01, name, 0x02, value, 0x03)
    assert state_version([(b"count", b"1")]) == "c5BzwkDXJZKb3faKSDXzDBnHKylbEnJsnt0tSeeSKps"
    assert state_version([]) == "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"  # SHA-256 of nothing
    mutate(p, {"count": b"9"}, version=state_version([(b"count", b"0")]), request="stale")
    code, message = answer(p, "stale")
    assert code == 409 and state_version([(b"count", b"1")]) in message
    assert state(p) == {b"count": b"1"}
    mutate(p, {"count": b"2"}, version=state_version([(b"count", b"1")]), request="current")
    assert answer(p, "current")[0] == 202 and state(p) == {b"count": b"2"}


def set_count(value: bytes) -> bytes:
    return encode_message(pb.SetStateCommandMessage(key=b"count", value=pb.Value(content=value)))


def test_queued_in_the_keys_inbox_while_an_exclusive_invocation_holds_it() -> None:
    """Restate's order: after the holder, before the invocations that arrived after the mutation."""
    p = new_partition()
    mutate(p, {"count": b"1"}, request="before")
    running, before, after = (str(InvocationId(0, i)) for i in (1, 2, 3))
    invoke(p, running, key="k", handler_kind="EXCLUSIVE")
    invoke(p, before, key="k", handler_kind="EXCLUSIVE")
    mutate(p, {"count": b"100"}, request="during")
    invoke(p, after, key="k", handler_kind="EXCLUSIVE")
    assert answer(p, "during")[0] == 202  # accepted now, as Restate answers
    assert state(p) == {b"count": b"1"}  # the running handler's view is untouched
    assert p.tables.objects.waiting("Svc", "k") == [before, after]  # the inbox's invocations only
    p.effects(running, 1, [set_count(b"2"), output(b"2")], {})
    assert state(p) == {b"count": b"2"} and p.status(before)["status"] == "INVOKED"
    actions = p.effects(before, 1, [set_count(b"3"), output(b"3")], {})
    assert state(p) == {b"count": b"100"}, "applied when its turn came, after the invocation queued before it"
    assert RunAttempt(after, 1) in actions and p.status(after)["status"] == "INVOKED"
    assert p.tables.objects.depth() == 0 and list(p.tables.tx.scan(b"sm/")) == []


def test_a_queued_mutation_with_a_stale_version_changes_nothing_when_its_turn_comes() -> None:
    p = new_partition()
    mutate(p, {"count": b"1"}, request="before")
    running = str(InvocationId(0, 1))
    invoke(p, running, key="k", handler_kind="EXCLUSIVE")
    mutate(p, {"count": b"100"}, version=state_version([(b"count", b"1")]), request="during")
    assert answer(p, "during")[0] == 202
    p.effects(running, 1, [set_count(b"2"), output(b"2")], {})  # the state is no longer at that version
    assert state(p) == {b"count": b"2"} and p.tables.objects.lock_holder("Svc", "k") is None


def test_killing_the_holder_applies_the_queued_mutation() -> None:
    p = new_partition()
    running = str(InvocationId(0, 1))
    invoke(p, running, key="k", handler_kind="EXCLUSIVE")
    mutate(p, {"count": b"7"})
    p.feed("AdminCommand", {"invocation_id": running, "command": "kill", "reply_to": None})
    assert state(p) == {b"count": b"7"} and p.tables.objects.lock_holder("Svc", "k") is None


def test_a_shared_handler_does_not_hold_the_key() -> None:
    p = new_partition()
    invoke(p, str(InvocationId(0, 1)), key="k", handler_kind="SHARED")
    mutate(p, {"count": b"5"})
    assert answer(p, "r1")[0] == 202 and state(p) == {b"count": b"5"}
