"""Embedded handlers: a restate-sdk app run inside the engine's process, called as ASGI, no network.

``REPRISE_EMBEDDED_APP=module:attribute`` names the app; the engine discovers it in-process at start
and registers it as the deployment ``embedded://module:attribute``. The invoker then hands its
attempts straight to the ASGI app instead of posting them over HTTP.

The app runs on event loops of its own, in worker threads (``REPRISE_EMBEDDED_THREADS``), never on
the engine's loop: a handler that blocks (``time.sleep``, a synchronous client) then stalls only
its worker, while the apply loop, timers, the ingress and other attempts go on. The scope says
HTTP/1.1, so the SDK speaks request/response, the mode the invoker expects.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import json
import threading
from typing import Any

SCHEME = "embedded://"


def load_app(spec: str) -> Any:
    """``package.module:attribute`` -> the object."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"embedded app {spec!r}: expected module:attribute, e.g. examples.greeter.app:app")
    return getattr(importlib.import_module(module), attr)


class EmbeddedApp:
    """An ASGI app behind a request/response call, on worker threads with their own loops."""

    def __init__(self, spec: str, threads: int = 4) -> None:
        self.spec = spec
        self.uri = SCHEME + spec
        self._app = load_app(spec)
        self._loops: list[asyncio.AbstractEventLoop] = []
        for i in range(max(1, threads)):
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name=f"embedded-{i}", daemon=True).start()
            self._loops.append(loop)
        self._next = itertools.cycle(self._loops)

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[
            int, dict[str, str], bytes]:
        """One request to the app on a worker loop; (status, response headers, body)."""
        fut = asyncio.run_coroutine_threadsafe(self._call(method, path, headers, body), next(self._next))
        return await asyncio.wrap_future(fut)

    async def _call(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[
            int, dict[str, str], bytes]:
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 0), "server": ("embedded", 0), "extensions": {},
        }
        sent_body = False
        response_done = asyncio.Event()
        status = 500
        out_headers: dict[str, str] = {}
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await response_done.wait()  # the client never goes away before the response ends
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                out_headers.update((k.decode().lower(), v.decode()) for k, v in message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    response_done.set()

        await self._app(scope, receive, send)
        return status, out_headers, b"".join(chunks)

    async def discover(self) -> dict[str, Any]:
        """The app's endpoint manifest, validated like a remote deployment's."""
        from engine.discovery import ACCEPT, DiscoveryError, validate

        status, headers, body = await self.request("GET", "/discover", {"accept": ACCEPT})
        if status != 200:
            raise DiscoveryError(f"embedded app {self.spec} answered {status} to discovery: {body[:200]!r}")
        manifest = json.loads(body)
        validate(manifest)
        if headers.get("x-restate-server"):
            manifest["_sdk"] = headers["x-restate-server"]
        return manifest

    def close(self) -> None:
        for loop in self._loops:
            loop.call_soon_threadsafe(loop.stop)
