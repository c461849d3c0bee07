"""The ingress's HTTP/1.1 server over real sockets: keep-alive, pipelining, chunked bodies,
100-continue, limits, malformed input, handler failures, disconnects, idle timeout and close."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from reprise.ingress.errors import error_reply
from reprise.ingress.http1 import HttpServer, Request, Response, encode_response

MAX_BODY = 1000
Client = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def echo(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("handler bug")
    if request.path.startswith("/sleep/"):
        await asyncio.sleep(float(request.path.rsplit("/", 1)[1]))
    body = json.dumps({"method": request.method, "path": request.path, "query": request.query,
                       "headers": request.header_list, "joined": request.headers, "body": request.body.decode()})
    return Response(200, body.encode(), {"content-type": "application/json"})


def run(work: Callable[[HttpServer], Awaitable[None]], handler=echo, idle_timeout_s: float = 75.0) -> None:
    async def main() -> None:
        server = HttpServer(handler, error_reply, MAX_BODY, idle_timeout_s)
        await server.start("127.0.0.1", 0)
        try:
            await asyncio.wait_for(work(server), 20)
        finally:
            await server.close(grace_s=0.5)
    asyncio.run(main())


async def connect(server: HttpServer) -> Client:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 5) == b""


def test_keep_alive_serves_requests_one_after_the_other() -> None:
    async def work(server: HttpServer) -> None:
        reader, writer = await connect(server)
        for i in range(3):
            writer.write(f"POST /Greeter/greet/send?delay=1s&x=%20y HTTP/1.1\r\nHost: h\r\nContent-Type: "
                         f"application/json\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 3\r\n\r\n\"{i}\"".encode())
            status, headers, body = await read_response(reader)
            got = json.loads(body)
            assert status == 200 and headers["content-type"] == "application/json" and "connection" not in headers
            assert got["method"] == "POST" and got["path"] == "/Greeter/greet/send" and got["body"] == f'"{i}"'
            assert got["query"] == {"delay": "1s", "x": " y"}
            assert ["x-a", "1"] in got["headers"] and ["x-a", "2"] in got["headers"] and got["joined"]["x-a"] == "1, 2"
        writer.close()
    run(work)


def test_pipelined_requests_are_answered_in_order() -> None:
    async def work(server: HttpServer) -> None:
        reader, writer = await connect(server)
        writer.write(b"GET /sleep/0.3 HTTP/1.1\r\n\r\nGET /sleep/0 HTTP/1.1\r\n\r\nGET /third HTTP/1.1\r\n\r\n")
        paths = [json.loads((await read_response(reader))[2])["path"] for _ in range(3)]
        assert paths == ["/sleep/0.3", "/sleep/0", "/third"]
        writer.close()
    run(work)


def test_chunked_body_split_at_every_byte() -> None:
    async def work(server: HttpServer) -> None:
        reader, writer = await connect(server)
        wire = (b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n"
                b"GET /next HTTP/1.1\r\n\r\n")
        for i in range(len(wire)):
            writer.write(wire[i:i + 1])
            await writer.drain()
        first, second = await read_response(reader), await read_response(reader)
        assert json.loads(first[2])["body"] == "hello world" and json.loads(second[2])["path"] == "/next"
        writer.close()
    run(work)


def test_chunk_sizes_are_hex_digits_with_optional_extensions() -> None:
    async def work(server: HttpServer) -> None:
        reader, writer = await connect(server)
        writer.write(b"POST /c HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"
                     b"A\r\n0123456789\r\n1 ;name=\"v\"\r\n!\r\n000\r\n\r\n")
        assert json.loads((await read_response(reader))[2])["body"] == "0123456789!"
        writer.close()
    run(work)


def test_expect_100_continue_is_answered_before_the_body_is_sent() -> None:
    async def work(server: HttpServer) -> None:
        reader, writer = await connect(server)
        writer.write(b"POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"ok")
        status, _, body = await read_response(reader)
        assert status == 200 and json.loads(body)["body"] == "ok"
        writer.close()
    run(work)


@pytest.mark.parametrize(("wire", "status", "message"), [
    (b"POST /x HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", 413, "exceeds the maximum of 1000 bytes"),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n", 413, "exceeds the maximum"),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "malformed chunk size"),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc", 400, "chunk not followed by CRLF"),
    (b"GARBAGE\r\n\r\n", 400, "malformed request line"),
    (b"GET /x HTTP/1.1\r\nno colon here\r\n\r\n", 400, "malformed header line"),
    (b"GET /x HTTP/1.1\r\nbad name: v\r\n\r\n", 400, "malformed header line"),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "not supported"),
    (b"POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "bad content-length"),
    (b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "both"),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "not supported"),
    (b"GET x HTTP/1.1\r\n\r\n", 400, "bad request target"),
    # numbers are ASCII digits only (RFC 9112), whatever Python's int() would accept
    ("POST /x HTTP/1.1\r\nContent-Length: \u00b2\r\n\r\n".encode(), 400, "bad content-length"),
    ("POST /x HTTP/1.1\r\nContent-Length: \u0663\r\n\r\nabc".encode(), 400, "bad content-length"),
    ("POST /x HTTP/1.1\r\nContent-Length: \uff11\r\n\r\na".encode(), 400, "bad content-length"),
    (b"POST /x HTTP/1.1\r\nContent-Length: +1\r\n\r\na", 400, "bad content-length"),
    (b"POST /x HTTP/1.1\r\nContent-Length: 1 0\r\n\r\n", 400, "bad content-length"),
    (b"POST /x HTTP/1.1\r\nContent-Length: 1_0\r\n\r\n", 400, "bad content-length"),
    (b"POST /x HTTP/1.1\r\nContent-Length: 0x1\r\n\r\n", 400, "bad content-length"),
    (b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, "bad content-length"),
    (b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na", 400, "bad content-length"),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", 400, "both"),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "not supported"),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x1f\r\n", 400, "malformed chunk size"),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n", 400, "malformed chunk size"),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n+a\r\n", 400, "malformed chunk size"),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n a\r\n", 400, "malformed chunk size"),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-0\r\n", 400, "malformed chunk size"),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", 400, "malformed chunk size"),
    ("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\u0663\r\n".encode(), 400, "malformed chunk size"),
    (b"GET /x HTTP/1.1\r\nX: " + b"v" * 70000, 431, "request head exceeds"),
])
def test_bad_requests_get_an_error_body_and_a_closed_connection(wire: bytes, status: int, message: str) -> None:
    calls: list[Request] = []

    async def counting(request: Request) -> Response:
        calls.append(request)
        return await echo(request)

    async def work(server: HttpServer) -> None:
        reader, writer = await connect(server)
        writer.write(wire)
        got, headers, body = await read_response(reader)
        assert got == status and headers["connection"] == "close"
        err = json.loads(body)
        assert err["code"] == status and message in err["message"]
        assert await closed(reader) and calls == []
    run(work, counting)


def test_http10_and_connection_close_end_the_connection_after_the_answer() -> None:
    async def work(server: HttpServer) -> None:
        for head in (b"GET /a HTTP/1.0\r\n\r\n", b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n"):
            reader, writer = await connect(server)
            writer.write(head)
            status, headers, _ = await read_response(reader)
            assert status == 200 and headers["connection"] == "close" and await closed(reader)
        reader, writer = await connect(server)  # HTTP/1.0 asking for keep-alive keeps it
        writer.write(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n")
        assert [json.loads((await read_response(reader))[2])["path"] for _ in range(2)] == ["/a", "/b"]
        assert await closed(reader)
    run(work)


def test_absolute_form_target_is_served_by_its_path() -> None:
    async def work(server: HttpServer) -> None:
        reader, writer = await connect(server)
        writer.write(b"GET http://example.com/Svc/h?x=1 HTTP/1.1\r\n\r\n")
        got = json.loads((await read_response(reader))[2])
        assert got["path"] == "/Svc/h" and got["query"] == {"x": "1"}
        writer.close()
    run(work)


def test_a_failing_handler_is_a_500_and_the_connection_stays_usable() -> None:
    async def work(server: HttpServer) -> None:
        reader, writer = await connect(server)
        writer.write(b"GET /boom HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n")
        status, _, body = await read_response(reader)
        assert status == 500 and json.loads(body) == {"code": 500, "message": "internal error: RuntimeError"}
        assert json.loads((await read_response(reader))[2])["path"] == "/after"
        writer.close()
    run(work)


def test_a_client_that_goes_away_cancels_its_handler() -> None:
    started, cancelled = asyncio.Event(), []

    async def slow(request: Request) -> Response:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(request.path)
            raise
        return Response(200)

    async def work(server: HttpServer) -> None:
        _, writer = await connect(server)
        writer.write(b"GET /waiting HTTP/1.1\r\n\r\n")
        await started.wait()
        writer.close()
        for _ in range(100):
            if cancelled:
                break
            await asyncio.sleep(0.05)
        assert cancelled == ["/waiting"] and not server.connections
    run(work, slow)


def test_idle_connections_are_closed_after_the_timeout() -> None:
    async def work(server: HttpServer) -> None:
        reader, writer = await connect(server)
        writer.write(b"GET /a HTTP/1.1\r\n\r\n")
        assert (await read_response(reader))[0] == 200
        assert await closed(reader)  # idle_timeout_s=0.3 below; the read would wait 5 s otherwise
    run(work, idle_timeout_s=0.3)


def test_close_ends_idle_connections_and_cuts_requests_past_the_grace() -> None:
    async def main() -> None:
        server = HttpServer(echo, error_reply, MAX_BODY)
        await server.start("127.0.0.1", 0)
        idle_reader, _ = await connect(server)
        busy_reader, busy_writer = await connect(server)
        quick_reader, quick_writer = await connect(server)
        busy_writer.write(b"GET /sleep/30 HTTP/1.1\r\n\r\n")
        quick_writer.write(b"GET /sleep/0.1 HTTP/1.1\r\n\r\n")
        await asyncio.sleep(0.05)
        await server.close(grace_s=0.5)
        assert await closed(idle_reader) and await closed(busy_reader)
        status, headers, _ = await read_response(quick_reader)  # finished inside the grace: answered
        assert status == 200 and headers["connection"] == "close" and await closed(quick_reader)
        with pytest.raises(OSError):
            await connect(server)
    asyncio.run(main())


def test_head_gets_the_length_without_the_body_and_utf8_headers_arrive_as_sent() -> None:
    async def work(server: HttpServer) -> None:
        reader, writer = await connect(server)
        writer.write("HEAD /h HTTP/1.1\r\n\r\nGET /g HTTP/1.1\r\nX-Name: clé\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")  # no body follows: the next bytes are the GET's answer
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: " in head
        status, _, body = await read_response(reader)
        got = json.loads(body)
        assert status == 200 and got["path"] == "/g" and ["x-name", "clé"] in got["headers"]
        writer.close()
    run(work)


def test_response_encoding() -> None:
    wire = encode_response(Response(202, b"{}", {"x-restate-id": "inv_1"}), keep_alive=False)
    assert wire == (b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\nx-restate-id: inv_1\r\n"
                    b"connection: close\r\n\r\n{}")
    injected = encode_response(Response(200, b"", {"content-type": "text/plain\r\nx-evil: 1"}), keep_alive=True)
    assert b"\r\nx-evil" not in injected and b"content-type: text/plain  x-evil: 1\r\n" in injected
