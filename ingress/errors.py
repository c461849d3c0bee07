"""Restate's error bodies: the ingress's ``{"code": N, "message": "..."}``, and the admin API's
``{"message": "...", "restate_code": null}`` (Restate's ``ErrorDescriptionResponse``)."""

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


def error_response(code: int, message: str, restate_code: str | None = None) -> web.Response:
    """The error as the admin API answers it: the status carries the code, the body Restate's fields
    (``restate_code`` names a documented Restate error, e.g. ``META0003``, where one applies)."""
    status = code if 400 <= code <= 599 else 500
    return web.json_response({"message": message, "restate_code": restate_code}, status=status)


class IngressError(Exception):
    """A request the ingress refuses; becomes an error response."""

    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None,
                 restate_code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.restate_code = restate_code  # the admin API's body names it (error_response)
