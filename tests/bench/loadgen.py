"""A closed-loop load generator: C workers, each sending its next request when the last one answered.

Counts the requests answered in the measured window (after a warm-up), whenever they were sent, the
errors among them, and the latency of each completed one. Prints nothing itself: ``run.py`` tabulates.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

Request = Callable[[aiohttp.ClientSession, str, int], Awaitable[bool]]  # (session, ingress, n) -> ok


@dataclass
class Result:
    completed: int = 0
    errors: int = 0
    late: int = 0  # answered only after the window closed (not counted as completed)
    ok_total: int = 0  # every successful answer, warm-up and late ones included (what the engine accepted)
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rps(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    @classmethod
    def merged(cls, parts: list[Result]) -> Result:
        """One result of several windows of the same row (``interleave.py``'s slices)."""
        return cls(sum(r.completed for r in parts), sum(r.errors for r in parts), sum(r.late for r in parts),
                   sum(r.ok_total for r in parts), [x for r in parts for x in r.latencies_ms],
                   sum(r.seconds for r in parts))

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


async def run_load(ingress: str, request: Request, concurrency: int, warmup_s: float, duration_s: float) -> Result:
    result = Result()
    start = time.monotonic()
    measure_from, stop_at = start + warmup_s, start + warmup_s + duration_s
    counter = 0
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def worker() -> None:
            nonlocal counter
            while (now := time.monotonic()) < stop_at:
                counter += 1
                t0 = now
                try:
                    ok = await request(session, ingress, counter)
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                t1 = time.monotonic()
                result.ok_total += ok
                # Counted by when it was answered, not when it started: counting only the requests that
                # both started and ended in the window would leave out ~C per window, more of the slower
                # engine's (latency/window: 1% between 210 and 260 ms over a 5 s window).
                if t1 > stop_at:
                    result.late += 1
                elif t1 >= measure_from:
                    if ok:
                        result.completed += 1
                        result.latencies_ms.append((t1 - t0) * 1000)
                    else:
                        result.errors += 1
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = duration_s
    return result


async def _post(session: aiohttp.ClientSession, url: str, body: str, ok: tuple[int, ...] = (200,)) -> bool:
    async with session.post(url, data=body, headers={"content-type": "application/json"}) as resp:
        await resp.read()
        return resp.status in ok


async def greet(s: aiohttp.ClientSession, ingress: str, n: int) -> bool:
    return await _post(s, f"{ingress}/BenchGreeter/greet", f'"n{n}"')


async def three_steps(s: aiohttp.ClientSession, ingress: str, n: int) -> bool:
    return await _post(s, f"{ingress}/BenchGreeter/three_steps", f'"n{n}"')


async def send(s: aiohttp.ClientSession, ingress: str, n: int) -> bool:
    return await _post(s, f"{ingress}/BenchGreeter/greet/send", f'"n{n}"', (202,))


async def counter_many(s: aiohttp.ClientSession, ingress: str, n: int) -> bool:
    return await _post(s, f"{ingress}/BenchCounter/k{n % 1000}/add", "1")


async def counter_hot(s: aiohttp.ClientSession, ingress: str, n: int) -> bool:
    return await _post(s, f"{ingress}/BenchCounter/hot/add", "1")


async def signup(s: aiohttp.ClientSession, ingress: str, n: int) -> bool:
    wf = f"u{n}-{uuid.uuid4().hex[:8]}"
    if not await _post(s, f"{ingress}/BenchSignup/{wf}/run/send", '"a@b"', (202,)):
        return False
    if not await _post(s, f"{ingress}/BenchSignup/{wf}/click", '"ok"'):
        return False
    async with s.get(f"{ingress}/restate/workflow/BenchSignup/{wf}/attach") as resp:
        return resp.status == 200 and (await resp.read()).strip() == b"true"


async def fan_out(s: aiohttp.ClientSession, ingress: str, n: int) -> bool:
    return await _post(s, f"{ingress}/BenchCaller/fan_out", f'"n{n}"')


async def object_chain(s: aiohttp.ClientSession, ingress: str, n: int) -> bool:
    return await _post(s, f"{ingress}/BenchChainA/k{n % 1000}/call", f'"n{n}"')


async def object_sends(s: aiohttp.ClientSession, ingress: str, n: int) -> bool:
    return await _post(s, f"{ingress}/BenchCaller/send_many", str(n))


WORKLOADS: list[tuple[str, Request, list[int]]] = [
    ("greet", greet, [1, 16, 64]),
    ("counter_1000_keys", counter_many, [16, 64]),
    ("counter_hot_key", counter_hot, [16]),
    ("three_run_steps", three_steps, [16, 64]),
    ("signup_workflow", signup, [16]),
    ("fan_out_5_calls", fan_out, [16, 64]),
    ("object_chain", object_chain, [16, 64]),
    ("object_sends_5", object_sends, [16, 64]),
    ("one_way_send", send, [16, 64]),  # last: the sends it leaves behind run on after it ends
]

# Rows whose requests leave work behind them (one-way sends): the service counter that counts it
# (benchapp's ``/_bench/<counter>``) and how many executions each answered request accounts for.
DEFERRED: dict[str, tuple[str, int]] = {"one_way_send": ("greets", 1), "object_sends_5": ("adds", 5)}
