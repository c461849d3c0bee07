"""HTTP/2 frames and request header blocks: the wire part of RFC 9113 and RFC 7541 a client needs.

Why by hand: the invoker makes one or more HTTP/2 requests per attempt, and the ``h2`` state machine
(with ``hyperframe`` and ``hpack``'s encoder) was a quarter of the engine's CPU on the greet benchmark
(docs/benchmarks.md, "The invoker's HTTP/2 client"). A client that only POSTs needs little of it: frames
are a 9-byte header and a payload, and request headers can be sent as HPACK literals that never touch a
dynamic table. Response header blocks are decoded with ``hpack.Decoder`` (the server may use its dynamic
table and Huffman). The connection's state (streams, flow control, settings) lives in
``reprise.partitions.invoker.h2c``.
"""

from __future__ import annotations

import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
# flags
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# settings
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE = 1, 2, 3, 4, 5
# error codes
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, CANCEL = 0, 1, 3, 6, 8

DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
MAX_WINDOW = 2**31 - 1

_HEAD = struct.Struct(">BHBBI")


class ProtocolViolation(Exception):
    """The peer broke HTTP/2: the connection cannot go on."""


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return _HEAD.pack(n >> 16, n & 0xFFFF, kind, flags, stream_id) + payload


def settings(values: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in values.items()))


def parse_settings(payload: bytes) -> dict[int, int]:
    if len(payload) % 6:
        raise ProtocolViolation(f"a SETTINGS frame of {len(payload)} bytes")
    return {k: v for k, v in struct.iter_unpack(">HI", payload)}


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, increment.to_bytes(4, "big"))


def rst_stream(stream_id: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, code.to_bytes(4, "big"))


def goaway(last_stream_id: int, code: int) -> bytes:
    return frame(GOAWAY, 0, 0, last_stream_id.to_bytes(4, "big") + code.to_bytes(4, "big"))


def u31(payload: bytes) -> int:
    """The first 31-bit number of a payload (stream ids, window increments)."""
    if len(payload) < 4:
        raise ProtocolViolation("a frame too short for its fields")
    return int.from_bytes(payload[:4], "big") & 0x7FFFFFFF


def unpad(flags: int, payload: bytes, priority: bool = False) -> bytes:
    """A DATA or HEADERS payload without its padding (and a HEADERS frame's priority fields)."""
    if flags & PADDED:
        if not payload or payload[0] >= len(payload):
            raise ProtocolViolation("padding longer than the frame")
        payload = payload[1:len(payload) - payload[0]]
    if priority and flags & PRIORITY_FLAG:
        if len(payload) < 5:
            raise ProtocolViolation("a HEADERS frame too short for its priority")
        payload = payload[5:]
    return payload


class FrameReader:
    """Splits the bytes a connection receives into (type, flags, stream id, payload) frames."""

    def __init__(self, max_frame_size: int) -> None:
        self.max_frame_size = max_frame_size
        self._rest = b""

    def feed(self, data: bytes) -> list[tuple[int, int, int, bytes]]:
        buf = self._rest + data if self._rest else data
        frames, p, n = [], 0, len(buf)
        while n - p >= 9:
            length = (buf[p] << 16) | (buf[p + 1] << 8) | buf[p + 2]
            if length > self.max_frame_size:
                raise ProtocolViolation(f"a {length}-byte frame (at most {self.max_frame_size} allowed)")
            end = p + 9 + length
            if end > n:
                break
            frames.append((buf[p + 3], buf[p + 4], int.from_bytes(buf[p + 5:p + 9], "big") & 0x7FFFFFFF,
                           buf[p + 9:end]))
            p = end
        self._rest = buf[p:]
        return frames


# RFC 7541 Appendix A: the static table entries a request uses (name index; and full pairs).
_STATIC_NAMES = {b":authority": 1, b":method": 2, b":path": 4, b":scheme": 6, b"accept-encoding": 16, b"accept": 19,
                 b"content-length": 28, b"content-type": 31, b"user-agent": 58}
_STATIC_PAIRS = {(b":method", b"GET"): 2, (b":method", b"POST"): 3, (b":path", b"/"): 4, (b":scheme", b"http"): 6,
                 (b":scheme", b"https"): 7}


def _hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_headers(headers: list[tuple[bytes, bytes]]) -> bytes:
    """An HPACK block of literals without indexing (no Huffman): the peer's decoder table never changes,
    so nothing here has to track it. Names must be lower case."""
    out = bytearray()
    for name, value in headers:
        full = _STATIC_PAIRS.get((name, value))
        if full is not None:
            out += _hpack_int(full, 7, 0x80)
            continue
        index = _STATIC_NAMES.get(name)
        if index is not None:
            out += _hpack_int(index, 4, 0x00)
        else:
            out.append(0)
            out += _hpack_int(len(name), 7, 0)
            out += name
        out += _hpack_int(len(value), 7, 0)
        out += value
    return bytes(out)


def header_frames(stream_id: int, block: bytes, end_stream: bool, max_frame: int) -> list[bytes]:
    """HEADERS, then CONTINUATION frames if the block is bigger than the peer's frame size."""
    flags = END_STREAM if end_stream else 0
    if len(block) <= max_frame:
        return [frame(HEADERS, flags | END_HEADERS, stream_id, block)]
    parts = [block[i:i + max_frame] for i in range(0, len(block), max_frame)]
    frames = [frame(HEADERS, flags, stream_id, parts[0])]
    frames += [frame(CONTINUATION, END_HEADERS if i == len(parts) - 1 else 0, stream_id, part)
               for i, part in enumerate(parts) if i > 0]
    return frames
