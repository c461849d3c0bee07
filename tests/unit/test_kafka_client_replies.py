"""The Kafka-native client's reply topic is writable by others: what it reads there must not raise."""

from __future__ import annotations

from reprise.engine.client import reply_for
from reprise.schemas import codec


class Record:
    def __init__(self, value: bytes | None, headers: list[tuple[str, bytes]] | None, error: object = None) -> None:
        self._value, self._headers, self._error = value, headers, error

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def error(self) -> object:
        return self._error


def reply_record(request_id: str) -> Record:
    body = codec.encode("Reply", {"ingress_id": "client", "request_id": request_id, "invocation_id": "inv_1",
                                  "value": b'"hi"', "failure": None, "source": None})
    return Record(body, codec.headers_for("Reply"))


def test_the_reply_for_the_command_is_returned() -> None:
    reply = reply_for(reply_record("c1"), "c1")
    assert reply is not None and reply.ok and reply.value == b'"hi"' and reply.invocation_id == "inv_1"


def test_another_commands_reply_is_not_this_ones() -> None:
    assert reply_for(reply_record("c2"), "c1") is None


def test_foreign_and_malformed_records_are_skipped_not_raised() -> None:
    good = reply_record("c1")
    for record in (Record(b"garbage", None),                          # no schema headers
                   Record(None, good.headers()),                      # empty value
                   Record(b"\xff\xff\xff", good.headers()),           # a Reply header over garbage
                   Record(good.value(), [("reprise.kind", b"Nonsense"), ("reprise.v", b"9")]),
                   Record(good.value(), good.headers(), error="partition EOF")):
        assert reply_for(record, "c1") is None
