"""One HTTP/2 connection of the invoker's h2c client: its streams, flow control both ways, the peer's
settings, and the reader side of a streamed response (``Inbox``). ``reprise.partitions.invoker.h2c`` pools them.

Frames are parsed and written by ``reprise.partitions.invoker.h2_frames``; the connection is an ``asyncio.Protocol``, so
a request costs no task: the peer's frames arrive in ``data_received`` and settle futures.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import hpack

from reprise.engine.limits import LimitExceeded, exceeded
from reprise.partitions.invoker import h2_frames as f

# Receive window per connection and stream: big responses never stall. A streamed response's window
# is given back as its reader takes the chunks, so at most this much of it is ever unread (Inbox).
WINDOW = 16 * 1024 * 1024
RECEIVE_MAX_FRAME = 1 << 20  # the largest frame the peer may send us: fewer frames for big responses
# Retire a connection after this many requests. Servers rotate connections themselves (hypercorn's
# keep_alive_max_requests, 1000 by default: it then sends GOAWAY and leaves the streams it had not
# started unanswered); rotating first, below their limit, keeps requests out of that trap.
REQUESTS_PER_CONNECTION = 500
GOAWAY_GRACE_S = 2.0  # after a GOAWAY, streams the peer claims to process get this long before a retry


class Inbox:
    """Chunks for one reader, in order; a failure put in is raised to the reader. ``get`` waits with a
    timeout and never loses an item (``asyncio.wait_for`` around ``Queue.get`` can drop one on
    Python 3.11 when the item and the timeout race: on a stream that would be a lost protocol frame).

    Bounded: at most ``max_bytes`` unread. A stream's producer is held back before that (HTTP/2 flow
    control: the window is given back as the reader takes, ``on_taken``); one that does not hold back
    makes the reader's next ``get`` fail with an H2cError, retryable like any transport failure, and
    what it puts afterwards is dropped."""

    def __init__(self, max_bytes: int | None = None, on_taken: Callable[[int], None] | None = None) -> None:
        self._items: deque[bytes | None | Exception] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.max_bytes, self._on_taken = max_bytes, on_taken
        self.queued = 0  # unread bytes
        self.overflowed = False

    def put(self, item: bytes | None | Exception) -> None:
        if self.overflowed:
            return
        if isinstance(item, bytes):
            self.queued += len(item)
            if self.max_bytes is not None and self.queued > self.max_bytes:
                self.overflowed = True
                self._items.clear()
                item = H2cError(f"the response stream sent {self.queued} bytes its reader had not taken, over "
                                f"the bound of {self.max_bytes} (the peer overran its flow-control window)")
                self.queued = 0
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self, timeout_s: float | None) -> bytes | None:
        """The next chunk, None at the end; raises the failure put in, or TimeoutError."""
        if not self._items:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout_s, _expire, waiter) if timeout_s is not None else None
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        item = self._items.popleft()
        if isinstance(item, bytes):
            self.queued -= len(item)
            if item and self._on_taken is not None:
                self._on_taken(len(item))
        elif isinstance(item, Exception):
            raise item
        return item


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class H2cError(Exception):
    """The request did not get a complete response: connection, protocol, reset or timeout."""


class ConnectionGone(H2cError):
    """The connection ended under the request (closed, lost, GOAWAY): worth one immediate retry."""


@dataclass
class Stream:
    done: asyncio.Future[tuple[int, bytes]]
    window: int  # what the peer lets us send on this stream now
    status: int = 0
    chunks: list[bytes] = field(default_factory=list)
    body: memoryview | None = None  # what is left to send, while flow control holds it back
    end_after_body: bool = True  # a streamed request stays open until H2cStream.end()
    inbox: Inbox | None = None  # streamed: chunks as they arrive
    local_closed: bool = False  # our END_STREAM went out
    remote_closed: bool = False  # the response ended
    unacked: int = 0  # received bytes not yet given back with a WINDOW_UPDATE
    received: int = 0  # response body bytes so far (a complete-body request)

    def fail(self, error: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(error)
            self.done.exception()  # a streamed request reads its inbox, not this future
        if self.inbox is not None:
            self.inbox.put(error)


class WriteHold:
    """Holds back connections' socket writes while a burst of sends is made, so that each connection
    writes once at the end: one syscall for a batch's notifications to many streams instead of one
    per stream. (uvloop writes to the socket inside ``transport.write``; on the three-steps bench a
    write per notification was 11% of the engine's GIL-held time.) Used as a context manager; nests.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.held: dict[Connection, None] = {}  # insertion-ordered: connections write in first-held order

    def __enter__(self) -> WriteHold:
        self.depth += 1
        return self

    def extend_past_started_tasks(self) -> None:
        """Hold on until the tasks created so far have run their first step: a callback scheduled now
        runs after them (the ready queue is FIFO), so the requests they start go out with the rest."""
        self.depth += 1
        asyncio.get_running_loop().call_soon(self.__exit__)

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1
        if not self.depth and self.held:
            held, self.held = self.held, {}
            for conn in held:
                conn._write_out()


class Connection(asyncio.Protocol):
    """One HTTP/2 connection: its streams, flow control both ways and the peer's settings."""

    def __init__(self, authority: str, max_requests: int, streams_cap: int = 100,
                 max_body: int | None = None) -> None:
        self.authority = authority.encode()
        self.max_body = max_body  # a complete-body response past this fails its request (LimitExceeded)
        self.max_requests = max_requests
        self.streams_cap = streams_cap  # ours, below the peer's: fewer streams per connection can cost a server less
        self.streams: dict[int, Stream] = {}
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.usable = True
        self.closed = False  # lost, or the peer said GOAWAY: no new streams
        self.requests = 0
        self.next_id = 1
        self.reader = f.FrameReader(RECEIVE_MAX_FRAME)
        self.decoder = hpack.Decoder()
        self.out: list[bytes] = []
        self.max_streams = 100  # until the peer's SETTINGS say (RFC 9113 suggests at least 100)
        self.send_window = f.DEFAULT_WINDOW  # connection level
        self.peer_initial_window = f.DEFAULT_WINDOW
        self.peer_max_frame = f.DEFAULT_MAX_FRAME
        self.unacked = 0
        self.continued: tuple[int, int, bytes] | None = None  # a header block awaiting CONTINUATION
        self.indexed_blocks: dict[bytes, list[tuple[bytes, bytes]]] = {}
        self.on_stream_freed: Callable[[], None] | None = None  # the pool's: a request may be waiting for a slot
        self.hold: WriteHold | None = None  # the pool's: writes wait while it is held

    # asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.out += [f.PREFACE, f.settings({f.ENABLE_PUSH: 0, f.INITIAL_WINDOW_SIZE: WINDOW,
                                            f.MAX_FRAME_SIZE: RECEIVE_MAX_FRAME}),
                     f.window_update(0, WINDOW - f.DEFAULT_WINDOW)]
        self._flush()
        self.ready.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            for kind, flags, stream_id, payload in self.reader.feed(data):
                if self.continued is not None and kind != f.CONTINUATION:
                    raise f.ProtocolViolation("a header block interrupted by another frame")
                handler = self._HANDLERS.get(kind)
                if handler is not None:
                    handler(self, flags, stream_id, payload)
        except (f.ProtocolViolation, hpack.HPACKError, ValueError, IndexError) as e:  # e.g. a bad :status
            self.out.append(f.goaway(0, f.PROTOCOL_ERROR))
            self._flush()
            self.usable, self.closed = False, True
            self._fail_all(H2cError(f"HTTP/2 protocol error: {e}"))
            if self.transport is not None:
                self.transport.close()
            return
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self.closed = True
        self._fail_all(ConnectionGone(f"connection lost: {exc or 'closed by the peer'}"))

    # frames from the peer ----------------------------------------------------------------------
    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise f.ProtocolViolation("DATA on stream 0")
        self.unacked += len(payload)
        if self.unacked >= WINDOW // 2:
            self.out.append(f.window_update(0, self.unacked))
            self.unacked = 0
        s = self.streams.get(stream_id)
        if s is None:
            return  # reset or cancelled here: the connection window is given back all the same
        data = f.unpad(flags, payload)
        if data:
            if s.inbox is not None:
                s.inbox.put(data)  # its window comes back as the reader takes it (_taken)
                if s.inbox.overflowed:  # the peer sent past the window it had: the reader sees an H2cError
                    self.cancel(stream_id)
                    return
            else:
                s.received += len(data)
                if self.max_body is not None and s.received > self.max_body:
                    s.fail(LimitExceeded(exceeded(f"the response from {self.authority.decode()}", s.received,
                                                  self.max_body)))
                    self.cancel(stream_id)
                    return
                s.chunks.append(data)
        if flags & f.END_STREAM:
            self._remote_ended(stream_id, s)
            return
        s.unacked += len(payload) if s.inbox is None else len(payload) - len(data)  # padding: back at once
        if s.unacked >= WINDOW // 2:
            self.out.append(f.window_update(stream_id, s.unacked))
            s.unacked = 0

    def _taken(self, stream_id: int, n: int) -> None:
        """A streamed response's reader took ``n`` bytes: the peer may send that much more."""
        s = self.streams.get(stream_id)
        if s is None or s.remote_closed:
            return
        s.unacked += n
        if s.unacked >= WINDOW // 2:
            self.out.append(f.window_update(stream_id, s.unacked))
            s.unacked = 0
            self._flush()

    def _on_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        block = f.unpad(flags, payload, priority=True)
        if flags & f.END_HEADERS:
            self._header_block(flags, stream_id, block)
        else:
            self.continued = (flags, stream_id, block)

    def _on_continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        if self.continued is None or self.continued[1] != stream_id:
            raise f.ProtocolViolation("CONTINUATION without the HEADERS it continues")
        first_flags, _, block = self.continued
        block += payload
        if flags & f.END_HEADERS:
            self.continued = None
            self._header_block(first_flags, stream_id, block)
        else:
            self.continued = (first_flags, stream_id, block)

    def _decode_headers(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """Every block goes through the decoder, whose table must follow the peer's, except a block of
        one-byte indexed fields only (what a server sends for the same headers once it indexed them):
        that changes no table, so while the table is unchanged it decodes the same and is remembered."""
        cached = self.indexed_blocks.get(block)
        if cached is not None:
            return cached
        headers = cast(list[tuple[bytes, bytes]], self.decoder.decode(block, raw=True))  # raw: a list of bytes pairs
        if all(b & 0x80 and b != 0xFF for b in block):
            if len(self.indexed_blocks) < 64:
                self.indexed_blocks[block] = headers
        else:
            self.indexed_blocks.clear()  # the block may have changed the table: indexes may now mean others
        return headers

    def _header_block(self, flags: int, stream_id: int, block: bytes) -> None:
        headers = self._decode_headers(block)
        s = self.streams.get(stream_id)
        if s is None:
            return
        if not s.status:
            for name, value in headers:
                if name == b":status":
                    s.status = int(value)
            if 100 <= s.status < 200:
                s.status = 0  # informational: the real response follows
            elif s.inbox is not None:
                s.inbox.put(b"")  # the status is known: a reader may look at it
        if flags & f.END_STREAM:
            self._remote_ended(stream_id, s)

    def _on_rst_stream(self, flags: int, stream_id: int, payload: bytes) -> None:
        s = self._forget(stream_id)
        if s is not None:
            s.fail(H2cError(f"stream reset by the peer (error {f.u31(payload)})"))
            self._maybe_retire()

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if flags & f.ACK:
            return
        values = f.parse_settings(payload)
        self.max_streams = values.get(f.MAX_CONCURRENT_STREAMS, self.max_streams)
        self.peer_max_frame = values.get(f.MAX_FRAME_SIZE, self.peer_max_frame)
        if f.INITIAL_WINDOW_SIZE in values:
            delta = values[f.INITIAL_WINDOW_SIZE] - self.peer_initial_window
            self.peer_initial_window = values[f.INITIAL_WINDOW_SIZE]
            for s in self.streams.values():
                s.window += delta
        self.out.append(f.frame(f.SETTINGS, f.ACK, 0))
        self._send_pending()

    def _on_ping(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not flags & f.ACK:
            self.out.append(f.frame(f.PING, f.ACK, 0, payload))

    def _on_goaway(self, flags: int, stream_id: int, payload: bytes) -> None:
        last_stream_id, code = f.u31(payload), int.from_bytes(payload[4:8], "big")
        self.usable = False
        self.closed = True
        gone = ConnectionGone(f"the peer closed the connection (GOAWAY {code})")
        self._fail_above(last_stream_id, gone)  # never processed: safe to send again
        asyncio.get_running_loop().call_later(GOAWAY_GRACE_S, self._fail_all, gone)

    def _on_window_update(self, flags: int, stream_id: int, payload: bytes) -> None:
        increment = f.u31(payload)
        if stream_id == 0:
            self.send_window += increment
        elif stream_id in self.streams:
            self.streams[stream_id].window += increment
        self._send_pending()

    def _on_push_promise(self, flags: int, stream_id: int, payload: bytes) -> None:
        raise f.ProtocolViolation("PUSH_PROMISE although push is disabled")

    _HANDLERS = {f.DATA: _on_data, f.HEADERS: _on_headers, f.CONTINUATION: _on_continuation,
                 f.RST_STREAM: _on_rst_stream, f.SETTINGS: _on_settings, f.PING: _on_ping, f.GOAWAY: _on_goaway,
                 f.WINDOW_UPDATE: _on_window_update, f.PUSH_PROMISE: _on_push_promise}

    def _remote_ended(self, stream_id: int, s: Stream) -> None:
        s.remote_closed = True
        if not s.done.done():
            s.done.set_result((s.status, b"".join(s.chunks)))
            if s.inbox is not None:
                s.inbox.put(None)
        if s.local_closed:
            self._forget(stream_id)
        elif s.inbox is None:  # answered before its body was all sent: nothing more is wanted
            self._forget(stream_id)
            self.out.append(f.rst_stream(stream_id, f.NO_ERROR))
        self._maybe_retire()

    def _maybe_retire(self) -> None:
        if not self.usable and not self.streams and self.transport is not None:
            self._write_out()
            self.transport.close()  # retired and drained

    # requests --------------------------------------------------------------------------------
    def _forget(self, stream_id: int) -> Stream | None:
        """A stream is over on both sides (or given up): its slot counts free again."""
        s = self.streams.pop(stream_id, None)
        if s is not None and self.on_stream_freed is not None:
            self.on_stream_freed()
        return s

    def free_streams(self) -> int:
        return min(self.max_streams, self.streams_cap) - len(self.streams)

    def post(self, path: str, headers: dict[str, str], body: bytes,
             streamed: bool = False) -> tuple[int, Stream]:
        """Start a request; ``streamed`` keeps its body open and delivers the response as chunks."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ConnectionGone("the connection is closing")
        stream_id = self.next_id
        self.next_id += 2
        self.requests += 1
        if self.requests >= self.max_requests:
            self.usable = False  # no new requests; closed once its streams are done
        fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        end_now = not body and not streamed
        s = self.streams[stream_id] = Stream(fut, self.peer_initial_window, end_after_body=not streamed,
                                              body=None if end_now else memoryview(body), local_closed=end_now,
                                              inbox=Inbox(WINDOW, lambda n: self._taken(stream_id, n))
                                              if streamed else None)
        fields = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", self.authority),
                  (b":path", path.encode())]
        if not streamed:
            fields.append((b"content-length", str(len(body)).encode()))
        fields += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.out += f.header_frames(stream_id, f.encode_headers(fields), end_now, self.peer_max_frame)
        self._send_body(stream_id, s)
        self._flush()
        return stream_id, s

    def send(self, stream_id: int, s: Stream, data: bytes, end: bool) -> None:
        """More of a streamed request's body; ``end`` closes it once everything queued is sent."""
        if s.local_closed or (stream_id not in self.streams):
            return  # already ended, or the stream is gone (reset, or the connection closed)
        if data:
            s.body = memoryview(data) if s.body is None else memoryview(s.body.tobytes() + data)
        if end:
            s.end_after_body = True
            if s.body is None:
                s.body = memoryview(b"")
        self._send_body(stream_id, s)
        self._flush()

    def cancel(self, stream_id: int) -> None:
        """A request given up on (timeout): reset its stream so the peer stops too."""
        if self._forget(stream_id) is None:
            return
        self.out.append(f.rst_stream(stream_id, f.CANCEL))
        self._flush()
        self._maybe_retire()

    def _send_body(self, stream_id: int, s: Stream) -> None:
        while s.body is not None:
            if not s.body and not s.end_after_body:
                s.body = None  # a streamed body, all sent so far: wait for more
                return
            n = min(len(s.body), s.window, self.send_window, self.peer_max_frame)
            if n <= 0 and s.body:
                return  # resumed by a WINDOW_UPDATE
            chunk, s.body = s.body[:n], s.body[n:]
            end = not s.body and s.end_after_body
            self.out.append(f.frame(f.DATA, f.END_STREAM if end else 0, stream_id, chunk.tobytes()))
            s.window -= n
            self.send_window -= n
            if end:
                s.body = None
                s.local_closed = True
                if s.remote_closed:
                    self._forget(stream_id)
                    self._maybe_retire()

    def _send_pending(self) -> None:
        for stream_id, s in list(self.streams.items()):
            if s.body is not None:
                self._send_body(stream_id, s)

    def _flush(self) -> None:
        if self.hold is not None and self.hold.depth:
            if self.out:
                self.hold.held[self] = None
            return
        self._write_out()

    def _write_out(self) -> None:
        if self.out:
            data = b"".join(self.out)
            self.out.clear()
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(data)

    def close(self) -> None:
        """Say GOAWAY and close (the client is shutting down)."""
        self.usable = False
        self.closed = True
        if self.transport is not None:
            self.out.append(f.goaway(0, f.NO_ERROR))
            self._write_out()
            self.transport.close()

    def _fail_above(self, last_stream_id: int, error: Exception) -> None:
        for stream_id in [i for i in self.streams if i > last_stream_id]:
            self._forget(stream_id).fail(error)  # type: ignore[union-attr]

    def _fail_all(self, error: Exception) -> None:
        self._fail_above(-1, error)
        self._maybe_retire()
