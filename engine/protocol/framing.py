"""Framing: an 8-byte big-endian header (u16 type, u16 flags, u32 length) before each protobuf payload."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

from google.protobuf.message import DecodeError, Message

from reprise.engine.limits import LimitExceeded, exceeded, what_is
from reprise.engine.protocol.messages import message_class, type_name, type_of

_HEADER = struct.Struct(">HHI")
HEADER_SIZE = _HEADER.size


class ProtocolError(Exception):
    """Bytes that are not a well-formed stream of protocol messages."""


class Frame(NamedTuple):
    type: int
    flags: int
    payload: bytes
    raw: bytes  # header and payload: what the journal stores and replays verbatim


def encode_frame(msg_type: int, payload: bytes, flags: int = 0) -> bytes:
    return _HEADER.pack(msg_type, flags, len(payload)) + payload


def encode_message(msg: Message, msg_type: int | None = None) -> bytes:
    return encode_frame(type_of(msg) if msg_type is None else msg_type, msg.SerializeToString())


def iter_frames(data: bytes) -> Iterator[Frame]:
    """The frames of a complete body; a truncated one is a ProtocolError."""
    pos, end = 0, len(data)
    view = memoryview(data)
    while pos < end:
        if end - pos < HEADER_SIZE:
            raise ProtocolError(f"truncated header at byte {pos}: {end - pos} of {HEADER_SIZE} bytes")
        t, flags, length = _HEADER.unpack_from(data, pos)
        stop = pos + HEADER_SIZE + length
        if stop > end:
            raise ProtocolError(f"truncated {type_name(t)} at byte {pos}: expected {length} payload bytes, "
                                f"found {end - pos - HEADER_SIZE}")
        yield Frame(t, flags, bytes(view[pos + HEADER_SIZE:stop]), bytes(view[pos:stop]))
        pos = stop


def parse_frame(raw: bytes) -> Frame:
    """One stored frame (a journal entry)."""
    if len(raw) >= HEADER_SIZE:  # the common case without iter_frames' generator: apply reads many entries
        t, flags, length = _HEADER.unpack_from(raw)
        if HEADER_SIZE + length == len(raw):
            return Frame(t, flags, raw[HEADER_SIZE:], raw)
    frames = list(iter_frames(raw))
    if len(frames) != 1:
        raise ProtocolError(f"expected one frame, found {len(frames)}")
    return frames[0]


def decode_frame(frame: Frame) -> Message:
    cls = message_class(frame.type)
    if cls is None:
        raise ProtocolError(f"unknown message type 0x{frame.type:04x}")
    msg = cls()
    try:
        msg.ParseFromString(frame.payload)
    except DecodeError as e:
        raise ProtocolError(f"malformed {type_name(frame.type)}: {e}") from None
    return msg


class FrameReader:
    """Incremental parsing for streamed bodies: feed chunks, take whole frames. A header announcing a
    payload over ``max_payload`` raises LimitExceeded at once: the payload is never buffered."""

    def __init__(self, max_payload: int | None = None) -> None:
        self._buf = bytearray()
        self._max = max_payload

    def feed(self, chunk: bytes) -> list[Frame]:
        self._buf += chunk
        out, pos = [], 0
        while len(self._buf) - pos >= HEADER_SIZE:
            t, flags, length = _HEADER.unpack_from(self._buf, pos)
            if self._max is not None and length > self._max:
                raise LimitExceeded(exceeded(f"{what_is(t)} from the service", length, self._max))
            stop = pos + HEADER_SIZE + length
            if stop > len(self._buf):
                break
            raw = bytes(self._buf[pos:stop])
            out.append(Frame(t, flags, raw[HEADER_SIZE:], raw))
            pos = stop
        del self._buf[:pos]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)
