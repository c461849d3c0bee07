"""A tiny ASGI app for the h2c client's tests: echoes the body; headers ask for a status, a delay, or
full duplex (each chunk echoed as it arrives, while the request is still open), or a flood (``x-flood``
bytes answered at once, however fast the client reads)."""

from __future__ import annotations

import asyncio
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = dict(scope["headers"])
    if headers.get(b"x-duplex"):
        await _duplex(receive, send)
        return
    if headers.get(b"x-flood"):
        await _flood(int(headers[b"x-flood"]), send)
        return
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    await asyncio.sleep(int(headers.get(b"x-delay-ms", b"0")) / 1000)
    await send({"type": "http.response.start", "status": int(headers.get(b"x-status", b"200")),
                "headers": [(b"content-type", b"application/octet-stream")]})
    await send({"type": "http.response.body", "body": body})


async def _duplex(receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    while True:
        msg = await receive()
        if msg["type"] != "http.request":
            return
        if msg.get("body"):
            await send({"type": "http.response.body", "body": msg["body"], "more_body": True})
        if not msg.get("more_body"):
            break
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _flood(size: int, send: Any) -> None:
    """``size`` bytes in 64 KiB chunks, as fast as HTTP/2 flow control lets them go."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    chunk = b"f" * 65536
    for _ in range(size // len(chunk)):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
