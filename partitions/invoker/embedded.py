"""Embedded handlers: a restate-sdk app run inside the engine's process, called as ASGI, no network.

``REPRISE_EMBEDDED_APP=module:attribute`` names the app; the engine discovers it in-process at start
and registers it as the deployment ``embedded://module:attribute``. The invoker then hands its
attempts straight to the ASGI app instead of posting them over HTTP.

The app runs on event loops of its own, in worker threads (``REPRISE_EMBEDDED_THREADS``), never on
the engine's loop: a handler that blocks (``time.sleep``, a synchronous client) then stalls only
its worker, while the apply loop, timers, the ingress and other attempts go on.

``request`` is request/response (the body is complete, as over HTTP/1.1); ``open_stream`` is the
streaming mode: chunks cross between the engine's loop and the worker's as they come, with the
same surface as an h2c stream (``reprise.partitions.invoker.h2c.H2cStream``), so an attempt streams in-process too.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import json
import os
import sys
import threading
from typing import Any

from reprise.engine.limits import LimitExceeded, exceeded
from reprise.partitions.invoker.h2_connection import WINDOW
from reprise.partitions.invoker.h2c import H2cError, Inbox

SCHEME = "embedded://"
_DISCONNECT = object()  # the engine gave up on a stream: the app sees http.disconnect
UNREAD_BYTES = WINDOW  # a stream's response the attempt has not read yet, at most (as over h2c)


def load_app(spec: str) -> Any:
    """``package.module:attribute`` -> the object. The module is looked up from the working directory
    too, as uvicorn and hypercorn do: the installed ``reprise`` command does not put it on the path."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"embedded app {spec!r}: expected module:attribute, e.g. examples.greeter.app:app")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
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

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"",
                      max_body: int | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request to the app on a worker loop; (status, response headers, body). A response body
        past ``max_body`` bytes raises LimitExceeded as it crosses it (the app's ``send`` fails there),
        as the HTTP clients' bounds do: it is never collected whole."""
        fut = asyncio.run_coroutine_threadsafe(self._call(method, path, headers, body, max_body), next(self._next))
        return await asyncio.wrap_future(fut)

    async def _call(self, method: str, path: str, headers: dict[str, str], body: bytes,
                    max_body: int | None) -> tuple[int, dict[str, str], bytes]:
        scope = _scope(method, path, headers, http_version="1.1")
        sent_body = False
        response_done = asyncio.Event()
        status = 500
        out_headers: dict[str, str] = {}
        chunks: list[bytes] = []
        size = 0
        over: LimitExceeded | None = None

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await response_done.wait()  # the client never goes away before the response ends
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, size, over
            if over is not None:
                raise over
            if message["type"] == "http.response.start":
                status = message["status"]
                out_headers.update((k.decode().lower(), v.decode()) for k, v in message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                size += len(chunk)
                if max_body is not None and size > max_body:
                    chunks.clear()
                    response_done.set()  # the client goes away: a receive waiting for it returns
                    over = LimitExceeded(exceeded(f"the response to {path}", size, max_body))
                    raise over
                chunks.append(chunk)
                if not message.get("more_body", False):
                    response_done.set()

        try:
            await self._app(scope, receive, send)
        except Exception:
            if over is None:
                raise
        if over is not None:  # whether the app let send's error through or swallowed it
            raise over
        return status, out_headers, b"".join(chunks)

    def open_stream(self, path: str, headers: dict[str, str], body: bytes) -> EmbeddedStream:
        """A full-duplex request to the app; ``body`` is its first chunk and the request stays open."""
        stream = EmbeddedStream(self.uri + path, next(self._next))
        stream.input.put_nowait(body)
        scope = _scope("POST", path, headers, http_version="2")
        asyncio.run_coroutine_threadsafe(stream.serve(self._app, scope), stream.worker)
        return stream

    async def discover(self) -> dict[str, Any]:
        """The app's endpoint manifest, validated like a remote deployment's."""
        from reprise.engine.discovery import ACCEPT, DiscoveryError, validate

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


def _scope(method: str, path: str, headers: dict[str, str], http_version: str) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": http_version,
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 0), "server": ("embedded", 0), "extensions": {},
    }


class EmbeddedStream:
    """One streamed request to the embedded app: the engine's loop sends and reads, the app runs on
    a worker loop; each side's queue is only touched from its own loop."""

    def __init__(self, url: str, worker: asyncio.AbstractEventLoop) -> None:
        self.url, self.worker = url, worker
        self.status = 0
        self.ended = False
        self._engine = asyncio.get_running_loop()
        # engine loop; bounded: an app that answers faster than the attempt reads fails it (retryable)
        self._inbox = Inbox(UNREAD_BYTES)
        self.input: asyncio.Queue[Any] = asyncio.Queue()  # worker loop (filled before it starts, then via it)

    # engine side -------------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if not self.ended:
            self.worker.call_soon_threadsafe(self.input.put_nowait, data)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.worker.call_soon_threadsafe(self.input.put_nowait, None)

    def reset(self) -> None:
        self.ended = True
        self.worker.call_soon_threadsafe(self.input.put_nowait, _DISCONNECT)
        self._inbox.put(H2cError("stream reset by this side"))

    async def read(self, timeout_s: float | None) -> bytes | None:
        return await self._inbox.get(timeout_s)

    def _deliver(self, item: bytes | None | Exception, status: int = 0) -> None:
        if status:
            self.status = status
        self._inbox.put(item)
        if self._inbox.overflowed and not self.ended:  # the reader sees an H2cError; the app is told to stop
            self.ended = True
            self.worker.call_soon_threadsafe(self.input.put_nowait, _DISCONNECT)

    # worker side -------------------------------------------------------------------------------
    async def serve(self, app: Any, scope: dict[str, Any]) -> None:
        async def receive() -> dict[str, Any]:
            item = await self.input.get()
            if item is _DISCONNECT:
                self.input.put_nowait(_DISCONNECT)  # every later receive sees it too
                return {"type": "http.disconnect"}
            if item is None:
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": item, "more_body": True}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self._engine.call_soon_threadsafe(self._deliver, b"", message["status"])
            elif message["type"] == "http.response.body":
                self._engine.call_soon_threadsafe(self._deliver, message.get("body", b""))
                if not message.get("more_body", False):
                    self._engine.call_soon_threadsafe(self._deliver, None)
                    self.input.put_nowait(_DISCONNECT)  # the client goes away only once the response ended

        try:
            await app(scope, receive, send)
        except Exception as e:  # noqa: BLE001 - the app failed outside the protocol: the attempt fails
            self._engine.call_soon_threadsafe(self._deliver, H2cError(f"embedded app raised {type(e).__name__}: {e}"))
