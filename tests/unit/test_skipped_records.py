"""A foreign or malformed record on a topic a process follows is skipped and counted, never fatal."""

from __future__ import annotations

from typing import Any

from reprise.engine import topic_view
from reprise.engine.topic_view import TopicView
from reprise.ingress import replies
from reprise.schemas import codec


class Msg:
    def __init__(self, value: bytes | None, headers: list[tuple[str, bytes]] | None = None,
                 key: bytes = b"k") -> None:
        self._value, self._headers, self._key = value, headers, key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def key(self) -> bytes:
        return self._key

    def topic(self) -> str:
        return "ns.replies"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 7


REPLY = {"ingress_id": "ing", "request_id": "r1", "invocation_id": "inv_1x", "value": b"1", "failure": None}


def test_only_well_formed_replies_are_taken() -> None:
    before = replies.SKIPPED._value.get()  # noqa: SLF001 - the counter's current value
    invoke = {"invocation_id": "inv_1x", "service": "S", "handler": "h", "input": b""}
    assert replies._decode_reply(Msg(b"garbage")) is None  # noqa: SLF001
    assert replies._decode_reply(Msg(codec.encode("Invoke", invoke), codec.headers_for("Invoke"))) is None  # noqa: SLF001
    assert replies._decode_reply(Msg(b"\xff\xff", codec.headers_for("Reply"))) is None  # noqa: SLF001
    assert replies.SKIPPED._value.get() == before + 3  # noqa: SLF001
    got = replies._decode_reply(Msg(codec.encode("Reply", REPLY), codec.headers_for("Reply")))  # noqa: SLF001
    assert got is not None and got["request_id"] == "r1"


def test_a_registry_view_skips_what_is_not_its_kind() -> None:
    taken: list[tuple[bytes, Any]] = []
    view = TopicView.__new__(TopicView)
    view._topic, view._kind, view._on_record = "ns.deployments", "Deployment", lambda k, r: taken.append((k, r))  # noqa: SLF001
    before = topic_view.SKIPPED.labels("ns.deployments")._value.get()  # noqa: SLF001
    view._take(Msg(codec.encode("Reply", REPLY)))  # noqa: SLF001 - a Reply where a Deployment belongs
    view._take(Msg(None))  # noqa: SLF001 - a tombstone is a record like any other
    assert taken == [(b"k", None)]
    assert topic_view.SKIPPED.labels("ns.deployments")._value.get() == before + 1  # noqa: SLF001

    def refuses(_k: bytes, _r: Any) -> None:
        raise TypeError("unexpected field")

    view._on_record = refuses  # noqa: SLF001
    view._take(Msg(None))  # noqa: SLF001 - the callback's failure is the record's: skipped too
    assert topic_view.SKIPPED.labels("ns.deployments")._value.get() == before + 2  # noqa: SLF001
