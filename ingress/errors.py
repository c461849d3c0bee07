"""Restate's error body for every non-2xx answer: ``{"code": N, "message": "..."}``."""

from __future__ import annotations

import orjson
from aiohttp import web


def error_response(code: int, message: str, source: str = "ingress") -> web.Response:
    status = code if 400 <= code <= 599 else 500
    return web.Response(status=status, body=orjson.dumps({"code": code, "message": message}),
                        content_type="application/json", headers={"x-restate-error-source": source})


class IngressError(Exception):
    """A request the ingress refuses; becomes an error response."""

    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}
