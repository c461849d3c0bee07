"""An embedded app's response body is bounded as it arrives, like the HTTP clients' bounds: the
chunk that crosses the limit fails the request, and the app is stopped there instead of the whole
body being collected first."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine.limits import LimitExceeded
from partitions.embedded import EmbeddedApp

CHUNK = 64 * 1024
CHUNKS = 200  # 12.5 MiB in all
sent: list[int] = []  # chunks the app got through send, per request


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with CHUNKS chunks of CHUNK bytes (or, for /swallow, ignores send's failures)."""
    await receive()
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
