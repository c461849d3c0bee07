"""Restate's error body for every non-2xx answer: ``{"code": N, "message": "..."}``."""

from __future__ import annotations

import orjson
from aiohttp import web

from reprise.ingress.http1 import Response


def _status_and_body(code: int, message: str) -> tuple[int, bytes]:
    return (code if 400 <= code <= 599 else 500), orjson.dumps({"code": code, "message": message})


def error_reply(code: int, message: str, source: str = "ingress") -> Response:
    """The error as the ingress's own HTTP server answers it."""
    status, body = _status_and_body(code, message)
    return Response(status, body, {"content-type": "application/json", "x-restate-error-source": source})


def error_response(code: int, message: str, source: str = "ingress") -> web.Response:
    """The error as an aiohttp response (the admin API)."""
    status, body = _status_and_body(code, message)
    return web.Response(status=status, body=body, content_type="application/json",
                        headers={"x-restate-error-source": source})


class IngressError(Exception):
    """A request the ingress refuses; becomes an error response."""

    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}
