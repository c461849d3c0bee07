"""Drive an ASGI app (a restate-sdk endpoint) in-process: one request, the whole response."""

from __future__ import annotations

import asyncio
from typing import Any


async def call_asgi(app: Any, method: str, path: str, headers: dict[str, str], body: bytes = b"",
                    http_version: str = "1.1") -> tuple[int, dict[str, str], bytes]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": http_version, "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 9080)}
    sent_body = False
    response_done = asyncio.Event()
    status, resp_headers, chunks = 0, {}, []

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await response_done.wait()  # the request side stays closed until the response is over
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            resp_headers.update({k.decode(): v.decode() for k, v in message.get("headers", [])})
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                response_done.set()

    await asyncio.wait_for(app(scope, receive, send), 30)
    return status, resp_headers, b"".join(chunks)
