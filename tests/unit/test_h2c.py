"""The lean h2c client against a real HTTP/2 server (hypercorn, h2c prior knowledge)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.h2c import H2cClient, H2cError
from tests.harness import Service, free_port


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[Service]:
    svc = Service(tmp_path, tmp_path / "echo.log", app="tests.services.echo_app:app")
    svc.start()
    yield svc
    svc.kill()


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_requests_multiplex_and_big_bodies_flow(echo: Service) -> None:
    async def go() -> None:
        client = H2cClient(timeout_s=30)
        try:
            assert await client.post(echo.uri + "/x", b"hello", {"x-status": "200"}) == (200, b"hello")
            bodies = [f"req-{i}".encode() * 50 for i in range(200)]
            got = await asyncio.gather(*(client.post(echo.uri + "/m", b, {}) for b in bodies))
            assert got == [(200, b) for b in bodies]
            big = bytes(range(256)) * (5 * 4096)  # 5 MiB each way: flow control both directions
            assert await client.post(echo.uri + "/big", big, {}) == (200, big)
            assert await client.post(echo.uri + "/err", b"no", {"x-status": "503"}) == (503, b"no")
            assert await client.post(echo.uri + "/empty", b"", {}) == (200, b"")
        finally:
            await client.aclose()
    run(go())


def test_refused_timeout_and_a_server_that_dies_are_errors(echo: Service) -> None:
    async def go() -> None:
        client = H2cClient(timeout_s=1)
        try:
            with pytest.raises(H2cError, match="cannot connect"):
                await client.post(f"http://127.0.0.1:{free_port()}/x", b"", {})
            with pytest.raises(H2cError, match="within"):
                await client.post(echo.uri + "/slow", b"", {"x-delay-ms": "3000"})
            slow = asyncio.ensure_future(H2cClient(timeout_s=30).post(echo.uri + "/slow", b"", {"x-delay-ms": "5000"}))
            await asyncio.sleep(0.5)
            echo.kill()
            with pytest.raises(H2cError, match="connection lost|closed"):
                await slow
            echo.start()  # same port: the client opens a new connection
            assert await client.post(echo.uri + "/x", b"again", {}) == (200, b"again")
        finally:
            await client.aclose()
    run(go())
