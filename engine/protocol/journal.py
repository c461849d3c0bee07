"""Journal entries as the engine builds and reads them: framed protocol messages.

The journal stores each entry exactly as it travels (header plus payload), so replaying a journal
to a deployment is concatenating stored bytes. These helpers build the notifications the runtime
appends and read the fields apply() needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import Frame, decode_frame, encode_frame, encode_message, parse_frame
from reprise.engine.protocol.messages import MessageType, is_notification, type_name
from reprise.schemas.avro_compiled import varint


def frame_type(raw: bytes) -> int:
    return int.from_bytes(raw[:2], "big")


def is_notification_frame(raw: bytes) -> bool:
    return is_notification(frame_type(raw))


def decode(raw: bytes) -> Any:
    """The protobuf message of one stored entry."""
    return decode_frame(parse_frame(raw))


def decode_frame_message(frame: Frame) -> Any:
    return decode_frame(frame)


def notification_id(raw: bytes) -> tuple[str, int | str]:
    """("completion", id) | ("signal", idx) | ("named", name) of a notification entry."""
    msg = decode(raw)
    which = msg.WhichOneof("id")
    if which == "completion_id":
        return "completion", msg.completion_id
    if which == "signal_id":
        return "signal", msg.signal_id
    if which == "signal_name":
        return "named", msg.signal_name
    raise ValueError(f"{type_name(frame_type(raw))} carries no id")


def _notification(t: MessageType, completion_id: int | None = None, signal: int | str | None = None,
                  **result: Any) -> bytes:
    msg = pb.NotificationMessage(**result)
    if completion_id is not None:
        msg.completion_id = completion_id
    elif isinstance(signal, str):
        msg.signal_name = signal
    elif signal is not None:
        msg.signal_id = signal
    return encode_frame(t, msg.SerializeToString())


def _result(value: bytes | None, failure: tuple[int, str] | None) -> dict[str, Any]:
    if failure is not None:
        return {"failure": pb.Failure(code=failure[0], message=failure[1])}
    return {"value": pb.Value(content=value or b"")}


def sleep_completion(completion_id: int) -> bytes:
    return _notification(MessageType.SLEEP_COMPLETION, completion_id, void=pb.Void())


def call_completion(completion_id: int, value: bytes | None, failure: tuple[int, str] | None) -> bytes:
    return _notification(MessageType.CALL_COMPLETION, completion_id, **_result(value, failure))


def call_invocation_id_completion(completion_id: int, invocation_id: str) -> bytes:
    return _notification(MessageType.CALL_INVOCATION_ID_COMPLETION, completion_id, invocation_id=invocation_id)


def signal_notification(signal: int | str, value: bytes | None = None,
                        failure: tuple[int, str] | None = None) -> bytes:
    result = {"void": pb.Void()} if value is None and failure is None else _result(value, failure)
    return _notification(MessageType.SIGNAL_NOTIFICATION, signal=signal, **result)


def lazy_state_completion(completion_id: int, value: bytes | None) -> bytes:
    result = {"void": pb.Void()} if value is None else {"value": pb.Value(content=value)}
    return _notification(MessageType.GET_LAZY_STATE_COMPLETION, completion_id, **result)


def lazy_state_keys_completion(completion_id: int, keys: list[bytes]) -> bytes:
    return _notification(MessageType.GET_LAZY_STATE_KEYS_COMPLETION, completion_id,
                         state_keys=pb.StateKeys(keys=keys))


def promise_notification(t: MessageType, completion_id: int, value: bytes | None, failure: Mapping[str, Any] | None,
                         void_if_empty: bool = False) -> bytes:
    """A promise command's completion: value, failure, or (peek of a pending one, complete ok) void."""
    if failure is not None:
        result: dict[str, Any] = {"failure": pb.Failure(code=failure["code"], message=failure["message"])}
    elif value is None and void_if_empty:
        result = {"void": pb.Void()}
    else:
        result = {"value": pb.Value(content=value or b"")}
    return _notification(t, completion_id, **result)


def run_completion_from_proposal(payload: bytes) -> bytes:
    """A ProposeRunCompletion becomes the RunCompletion notification the journal keeps."""
    prop = decode_frame(Frame(MessageType.PROPOSE_RUN_COMPLETION, 0, payload, b""))  # malformed: ProtocolError
    if prop.WhichOneof("result") == "failure":
        result: dict[str, Any] = {"failure": prop.failure}
    else:
        result = {"value": pb.Value(content=prop.value)}
    return _notification(MessageType.RUN_COMPLETION, prop.result_completion_id, **result)


# Encoded header fields by (name, value): a client sends the same few headers on every request.
_HEADER_FIELDS: dict[tuple[str, str], bytes] = {}


def input_command(headers: list[tuple[str, str]], body: bytes) -> bytes:
    """The InputCommand entry every invocation starts with, encoded by hand from cached header
    fields: through protobuf's classes it cost ~8 µs with five headers, ~13% of the apply thread
    under one-way sends (py-spy). The bytes are those protobuf writes
    (tests/unit/test_protocol.py)."""
    cache = _HEADER_FIELDS
    parts = []
    for pair in headers:
        field = cache.get(pair)
        if field is None:
            if len(cache) >= 4096:  # many distinct values (ids, dates): start over rather than grow
                cache.clear()
            header = _string_field(0x0A, pair[0]) + _string_field(0x12, pair[1])
            field = cache[pair] = b"\x0a" + varint(len(header)) + header  # headers = 1
        parts.append(field)
    value = b"\x0a" + varint(len(body)) + body if body else b""  # Value.content = 1
    parts.append(b"\x72" + varint(len(value)) + value)  # value = 14, always present
    return encode_frame(MessageType.INPUT_COMMAND, b"".join(parts))


def _string_field(tag: int, text: str) -> bytes:
    """A proto3 string field: absent when empty."""
    if not text:
        return b""
    raw = text.encode()
    return bytes((tag,)) + varint(len(raw)) + raw


def start_message(*, id: bytes, debug_id: str, known_entries: int, state_map: list[tuple[bytes, bytes]],
                  partial_state: bool, key: str, random_seed: int, retry_count_since_last_stored_entry: int,
                  duration_since_last_stored_entry: int) -> bytes:
    msg = pb.StartMessage(
        id=id, debug_id=debug_id, known_entries=known_entries, partial_state=partial_state, key=key,
        state_map=[pb.StartMessage.StateEntry(key=k, value=v) for k, v in state_map],
        random_seed=random_seed, retry_count_since_last_stored_entry=retry_count_since_last_stored_entry,
        duration_since_last_stored_entry=duration_since_last_stored_entry)
    return encode_message(msg)


def describe(raw: bytes) -> dict[str, Any]:
    """A readable form of one entry, for introspection."""
    t = frame_type(raw)
    msg: Message = decode(raw)
    return {"type": type_name(t), **MessageToDict(msg, preserving_proto_field_name=True)}
