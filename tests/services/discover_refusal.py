"""An ASGI app that refuses every request with a body the admin API must not pass on to its client."""

from __future__ import annotations

from typing import Any

SECRET_BODY = b"internal stack trace: db password hunter2"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": SECRET_BODY})
