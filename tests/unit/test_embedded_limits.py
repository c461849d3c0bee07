"""An embedded app's response body is bounded as it arrives, like the HTTP clients' bounds: the
chunk that crosses the limit fails the request, and the app is stopped there instead of the whole
body being collected first. A streamed response the attempt does not read is bounded too."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from reprise.engine.limits import LimitExceeded
from reprise.partitions.invoker.embedded import UNREAD_BYTES, EmbeddedApp
from reprise.partitions.invoker.h2c import H2cError

CHUNK = 64 * 1024
CHUNKS = 200  # 12.5 MiB in all
sent: list[int] = []  # chunks the app got through send, per request
flood_told = threading.Event()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with CHUNKS chunks of CHUNK bytes (or, for /swallow, ignores send's failures; /flood:
    a streamed answer of 3 * UNREAD_BYTES, then waits to be told the client went away)."""
    await receive()
    if scope["path"] == "/flood":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3 * UNREAD_BYTES // CHUNK):
            await send({"type": "http.response.body", "body": b"x" * CHUNK, "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        flood_told.set()
        return
    sent.append(0)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for i in range(CHUNKS):
        try:
            await send({"type": "http.response.body", "body": b"x" * CHUNK, "more_body": i < CHUNKS - 1})
        except LimitExceeded:
            if scope["path"] != "/swallow":
                raise
            return
        sent[-1] += 1


@pytest.fixture
def embedded() -> Any:
    e = EmbeddedApp(f"{__name__}:app", threads=1)
    yield e
    e.close()


def test_a_body_over_the_limit_fails_as_it_crosses_it(embedded: EmbeddedApp) -> None:
    sent.clear()
    with pytest.raises(LimitExceeded, match="the response to /big is .* over the limit of 1000000 bytes"):
        asyncio.run(embedded.request("POST", "/big", {}, b"", max_body=1_000_000))
    assert sent == [1_000_000 // CHUNK], "the app was stopped at the chunk that crossed the limit"


def test_an_app_that_swallows_the_failure_still_fails_the_request(embedded: EmbeddedApp) -> None:
    sent.clear()
    with pytest.raises(LimitExceeded):
        asyncio.run(embedded.request("POST", "/swallow", {}, b"", max_body=1_000_000))
    assert sent == [1_000_000 // CHUNK]


def test_a_body_within_the_limit_is_answered_whole(embedded: EmbeddedApp) -> None:
    status, _, body = asyncio.run(embedded.request("POST", "/ok", {}, b"", max_body=CHUNK * CHUNKS))
    assert status == 200 and len(body) == CHUNK * CHUNKS


def test_a_streamed_answer_nobody_reads_fails_the_attempt_retryably(embedded: EmbeddedApp) -> None:
    """At most UNREAD_BYTES wait for the attempt to read them: past that the read fails with an
    H2cError (a transport failure, retried) and the app sees the client go away."""
    async def go() -> None:
        stream = embedded.open_stream("/flood", {}, b"")
        inbox = stream._inbox
        deadline = asyncio.get_running_loop().time() + 60
        while not inbox.overflowed and asyncio.get_running_loop().time() < deadline:
            assert inbox.queued <= UNREAD_BYTES
            await asyncio.sleep(0.02)
        with pytest.raises(H2cError, match="had not taken"):
            while True:
                await stream.read(5)
        assert await asyncio.get_running_loop().run_in_executor(None, flood_told.wait, 60)
    flood_told.clear()
    asyncio.run(go())
