"""The admin API's gate: a bearer token on every request, JSON-only bodies.

Registering a deployment makes the engine call any URL; kill and purge destroy work; journals hold
what clients sent. So every admin request needs ``Authorization: Bearer <token>`` except the
probes and metrics (``/health...``, ``/metrics``), which reveal nothing and must answer a
supervisor that holds no secret. A body-carrying request must be ``application/json``: a web page
on a developer's machine can send a ``text/plain`` form POST to localhost without a CORS
preflight, but not a JSON one.

The token comes from ``REPRISE_ADMIN_TOKEN`` or a file (``REPRISE_ADMIN_TOKEN_FILE``,
``--admin-token-file``). ``reprise processor`` and ``reprise ingress`` refuse to start without
one; ``reprise dev`` needs one only when its admin API listens beyond loopback.
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from reprise.ingress.errors import error_response

TOKEN_ENV = "REPRISE_ADMIN_TOKEN"
TOKEN_FILE_ENV = "REPRISE_ADMIN_TOKEN_FILE"
OPEN_PREFIXES = ("/health", "/metrics")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class AdminTokenError(Exception):
    """No usable admin token where one is required; the text says how to give one."""


def read_token(token: str, token_file: str) -> str:
    """The configured token: the file's content (trimmed) if a file is named, else ``token``."""
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as e:
            raise AdminTokenError(f"cannot read the admin token file {token_file}: {e}") from None
        if not token:
            raise AdminTokenError(f"the admin token file {token_file} is empty")
    return token.strip()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def required_token(role: str, admin_host: str, token: str, token_file: str) -> str:
    """The token this process enforces ("" = none). Raises AdminTokenError where one is missing."""
    value = read_token(token, token_file)
    if value or (role == "dev" and is_loopback(admin_host)):
        return value
    where = "reprise dev with an admin API beyond loopback" if role == "dev" else f"reprise {role}"
    raise AdminTokenError(f"{where} needs an admin token: set {TOKEN_ENV} or {TOKEN_FILE_ENV} "
                          "(or pass --admin-token-file FILE)")


def _is_open(path: str) -> bool:
    """``/health``, ``/metrics`` and plain paths under them (no dot segments, no empty ones)."""
    if "/." in path or "//" in path:
        return False
    if path[:2] == "/v" and path[2:3].isdigit() and path[3:4] == "/":  # Restate's versioned paths: /v4/health
        path = path[3:]
    return any(path == p or path.startswith(p + "/") for p in OPEN_PREFIXES)


def bearer_of(request: web.Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def guard(token: str) -> Any:
    """The aiohttp middleware: 401 without the token (when one is set), 415 for a non-JSON body."""
    expected = token.encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if expected and not _is_open(request.path) and request.path != "/ui":
            if not hmac.compare_digest(bearer_of(request).encode(), expected):
                response = error_response(401, "the admin API needs Authorization: Bearer <admin token>")
                response.headers["www-authenticate"] = 'Bearer realm="reprise-admin"'
                return response
        if request.method in BODY_METHODS and request.can_read_body:
            if request.content_type != "application/json":
                return error_response(415, f"the admin API takes application/json bodies, "
                                           f"not {request.content_type or 'an unnamed content type'}")
        return await handler(request)

    return middleware


def uri_problem(uri: str) -> str | None:
    """Why a deployment URI is refused, or None: http(s) to a host, nothing the engine would not send as is."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as e:
        return f"not a valid URI ({e})"
    if parts.scheme not in ("http", "https"):
        return "the scheme must be http or https"
    if not parts.hostname:
        return "a host is required"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URI are not accepted: use additional_headers"
    if parts.query or "?" in uri:
        return "a query string is not accepted"
    if parts.fragment or "#" in uri:
        return "a fragment is not accepted"
    return None
