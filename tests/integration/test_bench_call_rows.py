"""The benchmark's call rows (tests/bench/loadgen.py) do what they are named for, on Reprise: the
fan-out answers its five calls' results, the chain answers through both objects and the service, and
the one-way sends reach their five object keys. A row that errored or skipped its calls would still
post a req/s figure; this catches it. The bench app runs embedded (no service process to start)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.bench import loadgen
from tests.bench.benchapp import FAN_OUT
from tests.harness import Engine, call_json
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka


async def _answers(eng: Engine, request: loadgen.Request, n: int) -> bool:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        return await request(session, eng.ingress, n)


def test_the_call_rows_make_their_calls_and_sends(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> None:
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "engine",
                 env={"REPRISE_EMBEDDED_APP": "tests.bench.benchapp:app"})
    eng.start()
    try:
        assert call_json(eng, "/BenchCaller/fan_out", "f") == (200, [f"Hello f.{i}" for i in range(FAN_OUT)])
        assert call_json(eng, "/BenchChainA/k1/call", "c") == (200, "Hello c")
        assert call_json(eng, "/BenchChainB/b-k1/call", "again") == (200, "Hello again")  # B's key as A names it

        # n=2 sends to keys s10 .. s14; each later add of 0 answers the key's count so far
        assert asyncio.run(_answers(eng, loadgen.object_sends, 2))
        for i in range(10, 10 + FAN_OUT):
            wait_until(lambda i=i: call_json(eng, f"/BenchCounter/s{i}/add", 0) == (200, 1), 60, f"the send to s{i}")
        assert call_json(eng, "/BenchCounter/s15/add", 0) == (200, 0), "a key the request did not send to"

        for name in ("fan_out_5_calls", "object_chain"):
            request = next(r for n, r, _ in loadgen.WORKLOADS if n == name)
            assert asyncio.run(_answers(eng, request, 3)), name
    finally:
        eng.kill()
