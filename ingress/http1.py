"""A small HTTP/1.1 server for the ingress: parse a request, hand it to one async handler, answer.

Why not aiohttp here: on one-way sends its request and response machinery (request objects, router,
middleware, stream writer) was ~15% of the engine's GIL-held samples, on a path that needs a method,
a path, a few headers and a body. This server does only that: keep-alive, pipelined requests answered
in order (one at a time per connection, as aiohttp does), ``Content-Length`` and chunked bodies,
``Expect: 100-continue``, a body limit (413 before the body is read), a head limit (431), an idle
timeout, and a graceful close. The admin API, with little traffic and many routes, stays on aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import cast
from urllib.parse import parse_qsl

log = logging.getLogger("reprise.ingress")

MAX_HEAD_BYTES = 64 * 1024
LINGER_S = 2.0  # after refusing a request: how long its unread rest is read and dropped
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Numbers on the wire are ASCII digits only: str.isdigit() and int() also take "²" or "٣", and
# int(x, 16) takes "0x1f", "1_0", "+a" and surrounding spaces, none of which RFC 9112 allows.
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
# chunk-size = 1*HEXDIG, then optional chunk extensions: BWS ";" ... (RFC 9112 7.1.1)
_CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,15})(?:[ \t]*;[^\r\n]*)?")
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


@dataclass(slots=True)
class Request:
    method: str
    path: str  # as sent: percent-encoded, without the query
    query_string: str
    headers: dict[str, str]  # lower-cased names; a repeated header's values joined with ", "
    header_list: list[tuple[str, str]]  # every header in order, lower-cased names
    body: bytes = b""

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.query_string, keep_blank_values=True)) if self.query_string else {}


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]
ErrorResponse = Callable[[int, str], Response]  # (status, message) -> the server's error body


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class _Head:
    method: str
    target: str
    keep_alive: bool
    headers: dict[str, str]
    header_list: list[tuple[str, str]]
    length: int | None  # None: chunked


def parse_head(raw: bytes, max_body: int) -> _Head:
    """Parse a request line and headers (without the blank line); BadRequest says why not."""
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]):
        raise BadRequest(400, "malformed request line")
    # UTF-8 where a client sent raw non-ASCII (as aiohttp read it); a byte that is not UTF-8 becomes U+FFFD
    method, target, version = parts[0].decode(), parts[1].decode("utf-8", "replace"), parts[2]
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise BadRequest(505, f"HTTP version {version.decode('latin-1')!r} not supported: use HTTP/1.1")
    headers: dict[str, str] = {}
    header_list: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):
            raise BadRequest(400, "malformed header line")
        k, v = name.decode().lower(), value.strip(b" \t").decode("utf-8", "replace")
        header_list.append((k, v))
        headers[k] = f"{headers[k]}, {v}" if k in headers else v
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection if version == b"HTTP/1.1" else "keep-alive" in connection
    return _Head(method, target, keep_alive, headers, header_list, _body_length(headers, max_body))


def _body_length(headers: dict[str, str], max_body: int) -> int | None:
    te, cl = headers.get("transfer-encoding"), headers.get("content-length")
    if te is not None:
        if cl is not None:
            raise BadRequest(400, "both transfer-encoding and content-length")
        if te.strip().lower() != "chunked":  # another coding would reach the handler undecoded
            raise BadRequest(501, f"transfer-encoding {te!r} not supported: use chunked or content-length")
        return None
    if cl is None:
        return 0
    if not _CONTENT_LENGTH.fullmatch(cl):  # also refuses differing repeats, joined as "5, 6"
        raise BadRequest(400, f"bad content-length {cl!r}: expected ASCII digits")
    n = int(cl)
    if n > max_body:
        raise BadRequest(413, f"request body exceeds the maximum of {max_body} bytes")
    return n


class _Chunks:
    """Incremental chunked-body decoding over the connection's buffer."""

    __slots__ = ("parts", "pos", "size", "max_body")

    def __init__(self, start: int, max_body: int) -> None:
        self.parts: list[bytes] = []
        self.pos, self.size, self.max_body = start, 0, max_body

    def feed(self, buf: bytearray) -> int | None:
        """Consume what is complete; the offset just past the body once it all arrived, else None."""
        while True:
            eol = buf.find(b"\r\n", self.pos)
            if eol < 0:
                if len(buf) - self.pos > 1024:
                    raise BadRequest(400, "malformed chunk size line")
                return None
            m = _CHUNK_SIZE_LINE.fullmatch(buf, self.pos, eol)
            if m is None:
                raise BadRequest(400, "malformed chunk size: expected hexadecimal digits")
            n = int(m.group(1), 16)
            if n == 0:
                return self._trailers(buf, eol)
            if self.size + n > self.max_body:
                raise BadRequest(413, f"request body exceeds the maximum of {self.max_body} bytes")
            if len(buf) < eol + 2 + n + 2:
                return None
            if buf[eol + 2 + n:eol + 4 + n] != b"\r\n":
                raise BadRequest(400, "chunk not followed by CRLF")
            self.parts.append(bytes(buf[eol + 2:eol + 2 + n]))
            self.size += n
            self.pos = eol + 4 + n

    def _trailers(self, buf: bytearray, eol: int) -> int | None:
        if buf[eol + 2:eol + 4] == b"\r\n":
            return eol + 4
        end = buf.find(b"\r\n\r\n", eol + 2)  # trailer fields: read past, not used
        if end < 0:
            if len(buf) - eol > MAX_HEAD_BYTES:
                raise BadRequest(431, "trailers too large")
            return None
        return end + 4


def encode_response(resp: Response, keep_alive: bool, head_only: bool = False) -> bytes:
    """The response's bytes; ``head_only`` (a HEAD request) keeps the length but leaves out the body."""
    head = [b"HTTP/1.1 %d %s\r\ncontent-length: %d\r\n" % (resp.status, _REASONS.get(resp.status, b""),
                                                           len(resp.body))]
    for k, v in resp.headers.items():
        if "\r" in v or "\n" in v:  # a value from a deployment's manifest must not split the head
            v = v.replace("\r", " ").replace("\n", " ")
        head.append(f"{k}: {v}\r\n".encode())
    if not keep_alive:
        head.append(b"connection: close\r\n")
    head.append(b"\r\n")
    if not head_only:
        head.append(resp.body)
    return b"".join(head)


class _Connection(asyncio.Protocol):
    """One client connection: requests are read and answered strictly one after the other."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.buf = bytearray()
        self.transport: asyncio.Transport  # set by connection_made, which asyncio calls before anything else
        self.head: _Head | None = None
        self.head_end = 0
        self.chunks: _Chunks | None = None
        self.task: asyncio.Task[None] | None = None
        self.closing = False
        self.reading_paused = False
        self.writable: asyncio.Future[None] | None = None
        self.idle: asyncio.TimerHandle | None = None
        self.draining = False

    # asyncio callbacks ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream transport (uvloop's is no subclass)
        self.server.connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.connections.discard(self)
        if self.idle is not None:
            self.idle.cancel()
        if self.task is not None:  # nobody is left to answer; a send already produced stays produced
            self.task.cancel()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.closing or self.draining:
            return
        self.buf += data
        if self.task is None:
            self._advance()
        elif len(self.buf) > self.server.max_body + MAX_HEAD_BYTES and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        # A client that stops sending is taken as gone (as a proxy does): the handler in progress is
        # cancelled; the invocation it started is durable and can be attached to.
        return False

    def pause_writing(self) -> None:
        self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    # parsing ------------------------------------------------------------------------------------
    def _advance(self) -> None:
        """Start the next complete request in the buffer, if there is one."""
        try:
            complete = self._next_request()
        except BadRequest as e:
            self._answer_and_close(e.status, str(e))
            return
        except Exception:  # noqa: BLE001 - a parser gap still gets an answer, never a silent drop
            log.exception("ingress could not parse a request")
            self._answer_and_close(400, "malformed request")
            return
        if complete is None:
            return
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        self.task = asyncio.get_running_loop().create_task(self._serve(*complete))

    def _next_request(self) -> tuple[Request, bool] | None:
        """The next complete request in the buffer and whether its connection stays open after it."""
        if self.head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0 and len(self.buf) <= MAX_HEAD_BYTES:
                return None
            if end < 0 or end > MAX_HEAD_BYTES:
                raise BadRequest(431, f"request head exceeds {MAX_HEAD_BYTES} bytes")
            self.head = parse_head(bytes(self.buf[:end]), self.server.max_body)
            self.head_end = end + 4
            if self.head.length is None:
                self.chunks = _Chunks(self.head_end, self.server.max_body)
            if self.head.headers.get("expect", "").lower() == "100-continue" and self._body_missing():
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        head = self.head
        if self.chunks is not None:
            done = self.chunks.feed(self.buf)
            if done is None:
                return None
            body, consumed = b"".join(self.chunks.parts), done
            self.chunks = None
        else:
            assert head.length is not None
            consumed = self.head_end + head.length
            if len(self.buf) < consumed:
                return None
            body = bytes(self.buf[self.head_end:consumed])
        del self.buf[:consumed]
        self.head = None
        target = head.target
        if not target.startswith("/"):
            target = _origin_form(target)
        path, _, query = target.partition("?")
        return Request(head.method, path, query, head.headers, head.header_list, body), head.keep_alive

    def _body_missing(self) -> bool:
        assert self.head is not None
        if self.head.length is None:
            return len(self.buf) <= self.head_end
        return self.head.length > 0 and len(self.buf) < self.head_end + self.head.length

    # answering ----------------------------------------------------------------------------------
    async def _serve(self, request: Request, keep_alive: bool) -> None:
        try:
            resp = await self.server.handler(request)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - any handler bug is a 500, never a dropped connection
            log.exception("ingress handler failed on %s %s", request.method, request.path)
            resp = self.server.error(500, f"internal error: {type(e).__name__}")
        if self.closing:
            return
        self.transport.write(encode_response(resp, keep_alive and not self.server.closing, request.method == "HEAD"))
        if self.writable is not None:
            await self.writable
        self.task = None
        if not keep_alive or self.server.closing:
            self._close()
            return
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()
        if self.buf:
            self._advance()
        if self.task is None:
            self._arm_idle()

    def _answer_and_close(self, status: int, message: str) -> None:
        """Refuse, then close lingering: the client may still be sending a body it will not read an
        answer for until it is done, and closing with unread input would reset the connection and
        lose the answer. So: answer, half-close, drop what still arrives, close on EOF or after a while."""
        if self.server.on_refused is not None:
            self.server.on_refused(status)
        self.transport.write(encode_response(self.server.error(status, message), False))
        self.draining = True
        self.buf.clear()
        if self.idle is not None:
            self.idle.cancel()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.idle = asyncio.get_running_loop().call_later(LINGER_S, self._close)

    def _arm_idle(self) -> None:
        self.idle = asyncio.get_running_loop().call_later(self.server.idle_timeout_s, self._close)

    def _close(self) -> None:
        if not self.closing:
            self.closing = True
            self.transport.close()


def _origin_form(target: str) -> str:
    """``http://host/path?q`` (absolute form) -> ``/path?q``; anything else is not a path."""
    scheme, sep, rest = target.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise BadRequest(400, f"bad request target {target[:100]!r}")
    slash = rest.find("/")
    return rest[slash:] if slash >= 0 else "/"


class HttpServer:
    """Serves ``handler`` on a port until ``close``."""

    def __init__(self, handler: Handler, error: ErrorResponse, max_body: int, idle_timeout_s: float = 75.0,
                 on_refused: Callable[[int], None] | None = None) -> None:
        self.handler = handler
        self.error = error
        self.on_refused = on_refused  # told the status of each request refused before the handler saw it
        self.max_body = max_body
        self.idle_timeout_s = idle_timeout_s
        self.connections: set[_Connection] = set()
        self.closing = False
        self.port = 0  # the bound port once started (useful when asked for port 0)
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self, grace_s: float = 2.0) -> None:
        """Stop accepting; close idle connections; give requests in flight ``grace_s``, then cut them.

        Calls still waiting for a result do not hold a shutdown: their invocations are durable and
        go on, and their clients reconnect or attach.
        """
        self.closing = True
        if self._server is not None:
            self._server.close()
        for c in list(self.connections):
            if c.task is None:
                c._close()
        busy = [c.task for c in self.connections if c.task is not None]
        if busy:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*busy, return_exceptions=True), grace_s)
        for c in list(self.connections):
            c._close()
        if self._server is not None:
            await self._server.wait_closed()
