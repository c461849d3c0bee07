"""The HTTP/2 frame layer, and the client against a scripted server that uses what hypercorn does not:
CONTINUATION, padding, priority fields, informational responses, trailers, PING, settings changes,
flow-control stalls and protocol violations."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import hpack
import pytest

from reprise.partitions.invoker import h2_frames as f
from reprise.partitions.invoker.h2_connection import WINDOW
from reprise.partitions.invoker.h2c import H2cClient, H2cError


def test_frames_split_and_reassemble_across_reads() -> None:
    wire = f.frame(f.DATA, f.END_STREAM, 3, b"abc") + f.settings({f.MAX_FRAME_SIZE: 20000}) + f.window_update(0, 9)
    reader = f.FrameReader(f.DEFAULT_MAX_FRAME)
    got = []
    for i in range(len(wire)):  # one byte at a time
        got += reader.feed(wire[i:i + 1])
    assert got == [(f.DATA, f.END_STREAM, 3, b"abc"), (f.SETTINGS, 0, 0, bytes.fromhex("000500004e20")),
                   (f.WINDOW_UPDATE, 0, 0, (9).to_bytes(4, "big"))]
    assert f.parse_settings(got[1][3]) == {f.MAX_FRAME_SIZE: 20000}
    with pytest.raises(f.ProtocolViolation):
        f.FrameReader(10).feed(f.frame(f.DATA, 0, 1, b"x" * 11))


def test_request_headers_decode_with_a_standard_decoder() -> None:
    fields = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"h:1"), (b":path", b"/a/b"),
              (b"content-type", b"application/vnd.restate.invocation.v6"), (b"x-long", b"v" * 300)]
    assert hpack.Decoder().decode(f.encode_headers(fields), raw=True) == fields
    frames = f.header_frames(1, f.encode_headers(fields), True, 100)
    reader = f.FrameReader(f.DEFAULT_MAX_FRAME)
    parsed = [fr for chunk in frames for fr in reader.feed(chunk)]
    assert [(k, fl) for k, fl, _, _ in parsed] == [(f.HEADERS, f.END_STREAM)] + [(f.CONTINUATION, 0)] * (
        len(parsed) - 2) + [(f.CONTINUATION, f.END_HEADERS)]
    assert hpack.Decoder().decode(b"".join(p for _, _, _, p in parsed), raw=True) == fields


def test_padding_and_priority_are_stripped() -> None:
    assert f.unpad(f.PADDED, bytes([2]) + b"data" + b"\0\0") == b"data"
    assert f.unpad(f.PADDED | f.PRIORITY_FLAG, bytes([1]) + b"\0" * 5 + b"hdr" + b"\0", priority=True) == b"hdr"
    with pytest.raises(f.ProtocolViolation):
        f.unpad(f.PADDED, bytes([9]) + b"ab")


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, int, bytes]:
    head = await reader.readexactly(9)
    payload = await reader.readexactly(int.from_bytes(head[:3], "big"))
    return head[3], head[4], int.from_bytes(head[5:9], "big"), payload


async def read_request(reader: asyncio.StreamReader, seen: list) -> tuple[int, bytes]:
    """Frames until a request's body ended: (stream id, body); every frame goes to ``seen``."""
    body = b""
    while True:
        kind, flags, sid, payload = await read_frame(reader)
        seen.append((kind, flags, sid, payload))
        if kind == f.DATA:
            body += payload
        if kind in (f.DATA, f.HEADERS) and flags & f.END_STREAM:
            return sid, body


async def with_server(script: Script, client_work: Callable[[str], Awaitable[None]]) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readexactly(len(f.PREFACE)) == f.PREFACE
        try:
            await script(reader, writer)
        finally:
            writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await client_work(f"http://127.0.0.1:{port}")
    finally:
        server.close()


def test_the_client_follows_what_a_server_may_send() -> None:
    seen: list = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        enc = hpack.Encoder()
        # a small send window: the client must wait for WINDOW_UPDATEs to send its 40 kB body
        writer.write(f.settings({f.INITIAL_WINDOW_SIZE: 1000, f.MAX_CONCURRENT_STREAMS: 5})
                     + f.frame(f.PING, 0, 0, b"12345678"))
        warm, _ = await read_request(reader, seen)  # answered after the settings: the next request obeys them
        writer.write(f.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, warm, enc.encode([(b":status", b"204")])))
        got = b""
        sid = 0
        while len(got) < 40_000:
            kind, flags, sid, payload = await read_frame(reader)
            seen.append((kind, flags, sid, payload))
            if kind == f.DATA:
                got += payload
                writer.write(f.window_update(0, len(payload)) + f.window_update(sid, len(payload)))
        informational = enc.encode([(b":status", b"100")])
        block = enc.encode([(b":status", b"201"), (b"x-big", b"h" * 200)])
        writer.write(f.frame(f.HEADERS, f.END_HEADERS, sid, informational)
                     + f.frame(f.HEADERS, f.PADDED | f.PRIORITY_FLAG, sid,
                               bytes([3]) + b"\0" * 5 + block[:50] + b"\0" * 3)
                     + f.frame(f.CONTINUATION, f.END_HEADERS, sid, block[50:])
                     + f.frame(f.DATA, f.PADDED, sid, bytes([4]) + got[:10] + b"\0" * 4)
                     + f.frame(f.PRIORITY, 0, sid, b"\0" * 5) + f.frame(0xEE, 0, 0, b"unknown frame type")
                     + f.frame(f.DATA, 0, sid, got[10:])
                     + f.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, sid, enc.encode([(b"grpc-status", b"0")])))
        await writer.drain()
        sid2, body2 = await read_request(reader, seen)  # a second request on the same connection
        writer.write(f.frame(f.HEADERS, f.END_HEADERS, sid2, enc.encode([(b":status", b"200")]))
                     + f.frame(f.DATA, f.END_STREAM, sid2, body2.upper()))
        await writer.drain()
        await reader.read()

    async def work(origin: str) -> None:
        client = H2cClient(timeout_s=10)
        try:
            assert await client.post(origin + "/warm", b"", {}) == (204, b"")
            body = bytes(range(200)) * 200
            assert await client.post(origin + "/a", body, {"X-Custom": "yes"}) == (201, body)
            assert await client.post(origin + "/b", b"second", {}) == (200, b"SECOND")
        finally:
            await client.aclose()

    asyncio.run(with_server(script, work))
    kinds = [(k, fl, sid) for k, fl, sid, _ in seen]
    assert (f.SETTINGS, f.ACK, 0) in kinds and (f.PING, f.ACK, 0) in kinds
    assert next(p for k, fl, _, p in seen if k == f.PING) == b"12345678"
    sent = [len(p) for k, _, sid, p in seen if k == f.DATA and sid == 3]
    assert sum(sent) == 40_000 and max(sent) <= 1000  # never beyond the window given
    decoder = hpack.Decoder()
    blocks = {sid: decoder.decode(p, raw=True) for k, _, sid, p in seen if k == f.HEADERS}
    assert (b"x-custom", b"yes") in blocks[3] and (b":path", b"/a") in blocks[3]
    assert sorted(blocks) == [1, 3, 5]


def test_a_big_response_gives_the_window_back() -> None:
    size = WINDOW  # twice what the client lets a connection hold unread before it must update
    updates: list[tuple[int, int]] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sid, _ = await read_request(reader, [])
        writer.write(f.frame(f.HEADERS, f.END_HEADERS, sid, hpack.Encoder().encode([(b":status", b"200")])))
        chunk = b"z" * f.DEFAULT_MAX_FRAME
        for _ in range(size // len(chunk)):
            writer.write(f.frame(f.DATA, 0, sid, chunk))
        writer.write(f.frame(f.DATA, f.END_STREAM, sid, b""))
        await writer.drain()
        try:
            while True:
                kind, _, wsid, payload = await read_frame(reader)
                if kind == f.WINDOW_UPDATE:
                    updates.append((wsid, f.u31(payload)))
        except asyncio.IncompleteReadError:
            pass

    async def work(origin: str) -> None:
        client = H2cClient(timeout_s=30)
        try:
            status, body = await client.post(origin + "/big", b"", {})
            assert status == 200 and len(body) == size
        finally:
            await client.aclose()

    asyncio.run(with_server(script, work))
    assert sum(n for sid, n in updates if sid == 0) >= size // 2
    assert any(sid == 1 for sid, _ in updates)


async def fails_as_protocol_error(origin: str) -> None:
    client = H2cClient(timeout_s=10)
    try:
        with pytest.raises(H2cError, match="protocol error"):
            await client.post(origin + "/x", b"x", {})
    finally:
        await client.aclose()


def answering_with(frame_for: Callable[[int], bytes]) -> Script:
    """A server that answers the first request with ``frame_for(stream id)``."""
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sid, _ = await read_request(reader, [])
        writer.write(frame_for(sid))
        await writer.drain()
        await reader.read()
    return script


def test_a_protocol_violation_fails_the_request_and_the_connection() -> None:
    script = answering_with(lambda _sid: f.frame(f.DATA, 0, 0, b"data on stream zero"))
    asyncio.run(with_server(script, fails_as_protocol_error))


def test_response_headers_follow_the_servers_table_as_it_changes() -> None:
    """A server's encoder indexes what it sends; the client remembers blocks of indexed fields only
    while its table stays the same, so an index that comes to mean another header is read anew."""
    # 503 is indexed as entry 62, then sent as the one byte 0xBE; inserting 299 makes 299 entry 62,
    # so the next 299 is the same byte 0xBE: it must not be read as the 503 it meant before.
    statuses = [b"503", b"503", b"299", b"299", b"503", b"200"]
    extra = {5: [(b"x-a", b"1" * 3000)]}

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        enc = hpack.Encoder()
        for i, status in enumerate(statuses):
            sid, _ = await read_request(reader, [])
            block = enc.encode([(b":status", status), *extra.get(i, [])])
            writer.write(f.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, sid, block))
            await writer.drain()
        await reader.read()

    async def work(origin: str) -> None:
        client = H2cClient(timeout_s=10)
        try:
            got = [(await client.post(origin + "/s", b"", {}))[0] for _ in statuses]
            assert got == [int(s) for s in statuses]
        finally:
            await client.aclose()

    asyncio.run(with_server(script, work))


def test_a_malformed_status_fails_the_request_not_the_client() -> None:
    script = answering_with(lambda sid: f.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, sid,
                                                 hpack.Encoder().encode([(b":status", b"2x0")])))
    asyncio.run(with_server(script, fails_as_protocol_error))
