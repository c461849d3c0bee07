"""What the admin routes share: reading a JSON object body, and running a blocking call off the loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from reprise.ingress.errors import IngressError

T = TypeVar("T")


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's body as a JSON object; 400 (Restate's error body) for anything else."""
    try:
        body = json.loads(await request.read() or b"null")
    except ValueError:
        raise IngressError(400, "Failed to parse the request body as JSON") from None
    if not isinstance(body, dict):
        raise IngressError(400, "expected a JSON object")
    return body


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the default executor: registry writes and Kafka round trips block."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
