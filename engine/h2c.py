"""A lean HTTP/2 cleartext (prior knowledge) client for the invoker, built directly on ``h2``.

Why not httpx: an attempt is one POST with a body in and a body out, thousands per second; httpx
and httpcore spend more CPU on their anyio machinery per request than the engine spends applying
the attempt's records (docs/benchmarks.md). Here a request is an h2 stream on a shared connection
driven by an ``asyncio.Protocol``: no task, no stream objects, no per-request locks.

Only what the invoker needs: POST with a complete body, the complete response body back, flow
control both ways, many streams per connection and more connections when the peer's
``max_concurrent_streams`` is reached. Connection loss, GOAWAY, resets and timeouts raise
``H2cError``; the invoker treats it like any transport failure (the attempt is retried).

``open_stream`` is the full-duplex form for the protocol's BIDI_STREAM mode: the request body stays
open (``H2cStream.send``, ``H2cStream.end``) while response chunks arrive (``H2cStream.read``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

WINDOW = 16 * 1024 * 1024  # receive window per connection and stream: big responses never stall
# Retire a connection after this many requests. Servers rotate connections themselves (hypercorn's
# keep_alive_max_requests, 1000 by default: it then sends GOAWAY and leaves the streams it had not
# started unanswered); rotating first, below their limit, keeps requests out of that trap.
REQUESTS_PER_CONNECTION = 500
GOAWAY_GRACE_S = 2.0  # after a GOAWAY, streams the peer claims to process get this long before a retry


class Inbox:
    """Chunks for one reader, in order; a failure put in is raised to the reader. ``get`` waits with a
    timeout and never loses an item (``asyncio.wait_for`` around ``Queue.get`` can drop one on
    Python 3.11 when the item and the timeout race: on a stream that would be a lost protocol frame)."""

    def __init__(self) -> None:
        self._items: deque[bytes | None | Exception] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: bytes | None | Exception) -> None:
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
        if isinstance(item, Exception):
            raise item
        return item


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class H2cError(Exception):
    """The request did not get a complete response: connection, protocol, reset or timeout."""


class _ConnectionGone(H2cError):
    """The connection ended under the request (closed, lost, GOAWAY): worth one immediate retry."""


@dataclass
class _Stream:
    done: asyncio.Future[tuple[int, bytes]]
    status: int = 0
    chunks: list[bytes] = field(default_factory=list)
    body: memoryview | None = None  # what is left to send, while flow control holds it back
    end_after_body: bool = True  # a streamed request stays open until H2cStream.end()
    inbox: Inbox | None = None  # streamed: chunks as they arrive

    def fail(self, error: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(error)
            self.done.exception()  # a streamed request reads its inbox, not this future
        if self.inbox is not None:
            self.inbox.put(error)


class _Connection(asyncio.Protocol):
    def __init__(self, authority: str, max_requests: int) -> None:
        self.authority = authority.encode()
        self.max_requests = max_requests
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.streams: dict[int, _Stream] = {}
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.usable = True
        self.requests = 0

    # asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.h2.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW, h2.settings.SettingCodes.ENABLE_PUSH: 0})
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(WINDOW - 65535)
        self._flush()
        self.ready.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            self._fail_all(H2cError(f"HTTP/2 protocol error: {e}"))
            self.transport.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.ResponseReceived):
                s = self.streams.get(ev.stream_id)
                if s is not None:
                    for name, value in ev.headers:
                        if name == b":status":
                            s.status = int(value)
                    if s.inbox is not None:
                        s.inbox.put(b"")  # the status is known: a reader may look at it
            elif isinstance(ev, h2.events.DataReceived):
                s = self.streams.get(ev.stream_id)
                if s is not None:
                    if s.inbox is not None:
                        s.inbox.put(ev.data)
                    else:
                        s.chunks.append(ev.data)
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                s = self.streams.pop(ev.stream_id, None)
                if s is not None and not s.done.done():
                    s.done.set_result((s.status, b"".join(s.chunks)))
                    if s.inbox is not None:
                        s.inbox.put(None)
                if not self.usable and not self.streams and self.transport is not None:
                    self.transport.close()  # retired and drained
            elif isinstance(ev, h2.events.StreamReset):
                s = self.streams.pop(ev.stream_id, None)
                if s is not None:
                    s.fail(H2cError(f"stream reset by the peer (error {ev.error_code})"))
            elif isinstance(ev, h2.events.WindowUpdated):
                self._send_pending()
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.usable = False
                closed = _ConnectionGone(f"the peer closed the connection (GOAWAY {ev.error_code})")
                self._fail_above(ev.last_stream_id, closed)  # never processed: safe to send again
                asyncio.get_running_loop().call_later(GOAWAY_GRACE_S, self._fail_all, closed)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self._fail_all(_ConnectionGone(f"connection lost: {exc or 'closed by the peer'}"))

    # requests --------------------------------------------------------------------------------
    def free_streams(self) -> int:
        return self.h2.remote_settings.max_concurrent_streams - len(self.streams)

    def post(self, path: str, headers: dict[str, str], body: bytes,
             streamed: bool = False) -> tuple[int, _Stream]:
        """Start a request; ``streamed`` keeps its body open and delivers the response as chunks."""
        stream_id = self.h2.get_next_available_stream_id()
        self.requests += 1
        if self.requests >= self.max_requests:
            self.usable = False  # no new requests; closed once its streams are done
        fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        s = self.streams[stream_id] = _Stream(fut, body=memoryview(body), end_after_body=not streamed,
                                              inbox=Inbox() if streamed else None)
        length = [] if streamed else [(b"content-length", str(len(body)).encode())]
        self.h2.send_headers(stream_id, [
            (b":method", b"POST"), (b":scheme", b"http"), (b":authority", self.authority), (b":path", path.encode()),
            *length, *((k.lower().encode(), v.encode()) for k, v in headers.items())],
            end_stream=not body and not streamed)
        if not body and not streamed:
            s.body = None
        self._send_body(stream_id, s)
        self._flush()
        return stream_id, s

    def send(self, stream_id: int, s: _Stream, data: bytes, end: bool) -> None:
        """More of a streamed request's body; ``end`` closes it once everything queued is sent."""
        if s.end_after_body and s.body is None:
            return  # already ended
        if data:
            s.body = memoryview(data) if s.body is None else memoryview(s.body.tobytes() + data)
        if end:
            s.end_after_body = True
            if s.body is None:
                s.body = memoryview(b"")
        try:
            self._send_body(stream_id, s)
        except h2.exceptions.H2Error:
            s.body = None  # the stream is gone (reset, or the connection closed): nothing to send to
        self._flush()

    def cancel(self, stream_id: int) -> None:
        """A request given up on (timeout): reset its stream so the peer stops too."""
        if self.streams.pop(stream_id, None) is None:
            return
        try:
            self.h2.reset_stream(stream_id)
            self._flush()
        except h2.exceptions.H2Error:
            pass

    def _send_body(self, stream_id: int, s: _Stream) -> None:
        while s.body is not None:
            if not s.body and not s.end_after_body:
                s.body = None  # a streamed body, all sent so far: wait for more
                return
            window = min(self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size)
            if window <= 0 and s.body:
                return  # resumed on WindowUpdated
            chunk, s.body = s.body[:window], s.body[window:]
            end = not s.body and s.end_after_body
            self.h2.send_data(stream_id, chunk.tobytes(), end_stream=end)
            if end:
                s.body = None

    def _send_pending(self) -> None:
        for stream_id, s in list(self.streams.items()):
            if s.body is not None:
                try:
                    self._send_body(stream_id, s)
                except h2.exceptions.StreamClosedError:
                    pass

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _fail_above(self, last_stream_id: int, error: Exception) -> None:
        for stream_id in [i for i in self.streams if i > last_stream_id]:
            self.streams.pop(stream_id).fail(error)

    def _fail_all(self, error: Exception) -> None:
        self._fail_above(-1, error)


class H2cClient:
    """Connections per origin, opened as needed; one request per stream."""

    def __init__(self, timeout_s: float, max_connections_per_origin: int = 8,
                 requests_per_connection: int = REQUESTS_PER_CONNECTION) -> None:
        self._timeout = timeout_s
        self._per_connection = requests_per_connection
        self._max = max_connections_per_origin
        self._pools: dict[tuple[str, int], list[_Connection]] = {}
        self._opening: dict[tuple[str, int], asyncio.Lock] = {}

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """POST and return (status, body). A request that failed with its connection (the server closed
        it, e.g. hypercorn's GOAWAY after ``keep_alive_max_requests``) is sent again at once on a fresh
        connection, a few times: waiting out a retry backoff for a routine connection rotation would be
        waste. (Sending again is what the invoker's retry would do anyway: an attempt may be repeated.)"""
        for _ in range(3):
            try:
                return await self._post_once(url, body, headers)
            except _ConnectionGone:
                continue
        try:
            return await self._post_once(url, body, headers)
        except _ConnectionGone as e:
            raise H2cError(str(e)) from None

    async def _post_once(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        conn, stream_id, s = await self._start(url, body, headers, streamed=False)
        try:
            return await asyncio.wait_for(asyncio.shield(s.done), self._timeout)
        except TimeoutError:
            conn.cancel(stream_id)
            raise H2cError(f"no complete response from {url} within {self._timeout:.0f}s") from None
        except asyncio.CancelledError:
            conn.cancel(stream_id)
            raise

    async def open_stream(self, url: str, body: bytes, headers: dict[str, str]) -> H2cStream:
        """Start a full-duplex request: ``body`` is sent at once and the request stays open."""
        for _ in range(3):
            try:
                conn, stream_id, s = await self._start(url, body, headers, streamed=True)
                return H2cStream(conn, stream_id, s, url)
            except _ConnectionGone:
                continue
        conn, stream_id, s = await self._start(url, body, headers, streamed=True)
        return H2cStream(conn, stream_id, s, url)

    async def _start(self, url: str, body: bytes, headers: dict[str, str],
                     streamed: bool) -> tuple[_Connection, int, _Stream]:
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise H2cError(f"h2c needs an http:// URL, not {url}")
        origin = (parts.hostname or "127.0.0.1", parts.port or 80)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn = await self._connection(origin)
        try:
            stream_id, s = conn.post(path, headers, body, streamed)
        except h2.exceptions.H2Error as e:  # e.g. the connection is closing: the next request opens another
            conn.usable = False
            raise _ConnectionGone(f"cannot start a request on the connection to {url}: {e}") from None
        return conn, stream_id, s

    async def _connection(self, origin: tuple[str, int]) -> _Connection:
        pool = self._pools.setdefault(origin, [])
        pool[:] = [c for c in pool if c.usable]
        best = max(pool, key=_Connection.free_streams, default=None)
        if best is not None and (best.free_streams() > 0 or len(pool) >= self._max):
            return best
        async with self._opening.setdefault(origin, asyncio.Lock()):
            pool[:] = [c for c in pool if c.usable]
            for c in pool:  # another request opened one meanwhile
                if c.free_streams() > 0:
                    return c
            loop = asyncio.get_running_loop()
            try:
                _, conn = await asyncio.wait_for(loop.create_connection(
                    lambda: _Connection(f"{origin[0]}:{origin[1]}", self._per_connection), origin[0], origin[1]),
                    self._timeout)
            except (OSError, TimeoutError) as e:
                raise H2cError(f"cannot connect to {origin[0]}:{origin[1]}: {e}") from None
            await conn.ready
            pool.append(conn)
            return conn

    async def aclose(self) -> None:
        for pool in self._pools.values():
            for c in pool:
                c.usable = False
                if c.transport is not None:
                    try:
                        c.h2.close_connection()
                        c._flush()  # noqa: SLF001
                    except h2.exceptions.H2Error:
                        pass
                    c.transport.close()
        self._pools.clear()


class H2cStream:
    """One full-duplex request: send more of the body, end it, read the response as it arrives."""

    def __init__(self, conn: _Connection, stream_id: int, stream: _Stream, url: str) -> None:
        self._conn, self._id, self._s, self.url = conn, stream_id, stream, url
        self.ended = False

    @property
    def status(self) -> int:
        """The response status, 0 until its headers arrived (``read`` returns b"" when they do)."""
        return self._s.status

    def send(self, data: bytes) -> None:
        if not self.ended:
            self._conn.send(self._id, self._s, data, end=False)

    def end(self) -> None:
        """Close the request body (the peer sees end of input); later sends are dropped."""
        if not self.ended:
            self.ended = True
            self._conn.send(self._id, self._s, b"", end=True)

    async def read(self, timeout_s: float | None) -> bytes | None:
        """The next response chunk (b"" when only the headers arrived), None at the end of the response.
        Raises H2cError if the stream failed, TimeoutError if nothing came within ``timeout_s``."""
        assert self._s.inbox is not None
        return await self._s.inbox.get(timeout_s)

    def reset(self) -> None:
        """Give up on the request: the peer sees the stream reset, a pending ``read`` an H2cError."""
        self.ended = True
        self._conn.cancel(self._id)
        self._s.fail(H2cError("stream reset by this side"))
