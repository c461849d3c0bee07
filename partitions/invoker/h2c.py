"""A lean HTTP/2 cleartext (prior knowledge) client for the invoker.

Why not httpx: an attempt is one POST with a body in and a body out, thousands per second; httpx and
httpcore spend more CPU on their anyio machinery per request than the engine spends applying the
attempt's records, and the ``h2`` state machine alone was a quarter of the engine's CPU on the greet
benchmark (docs/benchmarks.md, "The invoker's HTTP/2 client"). Here a request is a stream on a shared
connection driven by an ``asyncio.Protocol`` that reads and writes frames itself
(``reprise.partitions.invoker.h2_frames``): no task, no event objects, no per-request locks.

Only what the invoker needs: POST with a complete body, the complete response body back, flow
control both ways, many streams per connection and more connections when the peer's
``max_concurrent_streams`` is reached. Connection loss, GOAWAY, resets and timeouts raise
``H2cError``; the invoker treats it like any transport failure (the attempt is retried).

``open_stream`` is the full-duplex form for the protocol's BIDI_STREAM mode: the request body stays
open (``H2cStream.send``, ``H2cStream.end``) while response chunks arrive (``H2cStream.read``).
One connection's protocol is ``reprise.partitions.invoker.h2_connection``; this module pools connections per origin.
"""

from __future__ import annotations

import asyncio
from collections import deque
from urllib.parse import urlsplit

from reprise.partitions.invoker.attempt_timeouts import RequestWatch
from reprise.partitions.invoker.h2_connection import (  # noqa: F401 - H2cError and Inbox are part of this module's API
    REQUESTS_PER_CONNECTION,
    Connection,
    ConnectionGone,
    H2cError,
    Inbox,
    Stream,
    WriteHold,
)


class H2cClient:
    """Connections per origin, opened as needed; one request per stream."""

    def __init__(self, timeout_s: float, max_connections_per_origin: int = 8, max_streams_per_connection: int = 100,
                 requests_per_connection: int = REQUESTS_PER_CONNECTION, max_response_bytes: int | None = None) -> None:
        self._timeout = timeout_s
        self._max_body = max_response_bytes  # a larger complete-body response raises limits.LimitExceeded
        self._per_connection = requests_per_connection
        self._streams_cap = max_streams_per_connection
        self._max = max_connections_per_origin
        self._pools: dict[tuple[str, int], list[Connection]] = {}
        self._opening: dict[tuple[str, int], asyncio.Lock] = {}
        self._waiting: dict[tuple[str, int], deque[asyncio.Future[None]]] = {}  # requests waiting for a slot
        self.held_writes = WriteHold()  # ``with client.held_writes:``: every connection writes once at the end

    async def post(self, url: str, body: bytes, headers: dict[str, str],
                   watch: RequestWatch | None = None) -> tuple[int, bytes]:
        """POST and return (status, body). With ``watch``, the response may take as long as it keeps
        arriving: the watch's abort timeout bounds its silence (else the client's timeout bounds it all).
        A request that failed with its connection (the server closed it, e.g. hypercorn's GOAWAY after
        ``keep_alive_max_requests``) is sent again at once on a fresh connection, a few times: waiting
        out a retry backoff for a routine connection rotation would be waste. (Sending again is what the
        invoker's retry would do anyway: an attempt may be repeated.)"""
        for _ in range(3):
            try:
                return await self._post_once(url, body, headers, watch)
            except ConnectionGone:
                continue
        try:
            return await self._post_once(url, body, headers, watch)
        except ConnectionGone as e:
            raise H2cError(str(e)) from None

    async def _post_once(self, url: str, body: bytes, headers: dict[str, str],
                         watch: RequestWatch | None) -> tuple[int, bytes]:
        conn, stream_id, s = await self._start(url, body, headers, streamed=False)
        if watch is not None:
            watch.attach(lambda: s.received, lambda error: _give_up(conn, stream_id, s, error))
            try:
                return await asyncio.shield(s.done)
            except asyncio.CancelledError:
                conn.cancel(stream_id)
                raise
            finally:
                watch.detach()
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
            except ConnectionGone:
                continue
        conn, stream_id, s = await self._start(url, body, headers, streamed=True)
        return H2cStream(conn, stream_id, s, url)

    async def _start(self, url: str, body: bytes, headers: dict[str, str],
                     streamed: bool) -> tuple[Connection, int, Stream]:
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise H2cError(f"h2c needs an http:// URL, not {url}")
        origin = (parts.hostname or "127.0.0.1", parts.port or 80)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn = await self._connection(origin)
        try:
            stream_id, s = conn.post(path, headers, body, streamed)
        except ConnectionGone as e:  # the connection is closing: the next request opens another
            conn.usable = False
            raise ConnectionGone(f"cannot start a request on the connection to {url}: {e}") from None
        return conn, stream_id, s

    async def _connection(self, origin: tuple[str, int]) -> Connection:
        """A connection with a free stream: an open one, a new one while under the limit, else the first
        to free a slot. Never a full one: a server answers a stream past its ``max_concurrent_streams``
        by closing the whole connection (hypercorn: GOAWAY PROTOCOL_ERROR), failing every request on it."""
        pool = self._pools.setdefault(origin, [])
        deadline = None
        while True:
            pool[:] = [c for c in pool if c.usable]
            best = max(pool, key=Connection.free_streams, default=None)
            if best is not None and best.free_streams() > 0:
                return best
            if len(pool) < self._max:
                conn = await self._open(origin, pool)
                if conn is not None and conn.free_streams() > 0:
                    return conn
                continue
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + self._timeout
            slot = loop.create_future()
            self._waiting.setdefault(origin, deque()).append(slot)
            try:
                await asyncio.wait_for(slot, max(0.0, deadline - loop.time()))
            except asyncio.CancelledError:
                if slot.done() and not slot.cancelled():
                    self._wake_one(origin)  # woken, then cancelled: the slot goes to the next in line
                raise
            except TimeoutError:
                raise H2cError(f"no free stream to {origin[0]}:{origin[1]} within {self._timeout:.0f}s: "
                               f"{len(pool)} connections at the peer's limit") from None

    async def _open(self, origin: tuple[str, int], pool: list[Connection]) -> Connection | None:
        """A new connection; or one another request opened meanwhile; None if the pool filled up."""
        async with self._opening.setdefault(origin, asyncio.Lock()):
            pool[:] = [c for c in pool if c.usable]
            for c in pool:
                if c.free_streams() > 0:
                    return c
            if len(pool) >= self._max:
                return None
            loop = asyncio.get_running_loop()
            try:
                _, conn = await asyncio.wait_for(loop.create_connection(
                    lambda: Connection(f"{origin[0]}:{origin[1]}", self._per_connection, self._streams_cap,
                                       self._max_body),
                    origin[0], origin[1]),
                    self._timeout)
            except (OSError, TimeoutError) as e:
                raise H2cError(f"cannot connect to {origin[0]}:{origin[1]}: {e}") from None
            conn.on_stream_freed = lambda: self._wake_one(origin)
            conn.hold = self.held_writes
            await conn.ready
            pool.append(conn)
            return conn

    def _wake_one(self, origin: tuple[str, int]) -> None:
        """A stream ended: the longest-waiting request looks for a slot again."""
        waiting = self._waiting.get(origin)
        while waiting:
            slot = waiting.popleft()
            if not slot.done():
                slot.set_result(None)
                return

    async def aclose(self) -> None:
        for pool in self._pools.values():
            for c in pool:
                c.close()
        self._pools.clear()


def _give_up(conn: Connection, stream_id: int, s: Stream, error: Exception) -> None:
    """End a request here: the peer sees its stream reset, the waiting ``post`` ``error``."""
    conn.cancel(stream_id)
    s.fail(error)


class H2cStream:
    """One full-duplex request: send more of the body, end it, read the response as it arrives."""

    def __init__(self, conn: Connection, stream_id: int, stream: Stream, url: str) -> None:
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
