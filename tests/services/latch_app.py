"""Services for tests that must control *when* a step runs and see *which* execution of it counted.

Every execution of a step appends a line to a file under $REPRISE_TEST_EFFECTS: ``start`` when it
begins and ``done`` when it ends, each with a token naming that one execution and the wall-clock time.
The step's result is its token, so the result the engine journaled tells which execution counted.
A step can be held on a latch: it waits until the test creates the latch file.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

import restate

EFFECTS = Path(os.environ.get("REPRISE_TEST_EFFECTS", "/tmp/reprise-effects"))
EFFECTS.mkdir(parents=True, exist_ok=True)
LATCH_WAIT_S = 120.0


def _line(name: str, text: str) -> None:
    with open(EFFECTS / name, "a") as f:
        f.write(text + "\n")


async def wait_latch(name: str) -> None:
    """Until the test creates ``<effects>/<name>`` (bounded, so a broken test cannot hang the service)."""
    deadline = time.monotonic() + LATCH_WAIT_S
    while not (EFFECTS / name).exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


latched = restate.VirtualObject("Latched")


@latched.handler()
async def take(ctx: restate.ObjectContext) -> str:
    """Execution n of this handler (counted across attempts) waits for latch ``<key>.go<n>``, then
    stores and returns its own name: the state and the output say which execution the log kept."""
    key = ctx.key()
    started = EFFECTS / f"{key}.started"
    n = (len(started.read_text().splitlines()) if started.exists() else 0) + 1
    _line(f"{key}.started", f"execution{n}")
    await wait_latch(f"{key}.go{n}")
    _line(f"{key}.finished", f"execution{n}")
    ctx.set("by", f"execution{n}")
    return f"execution{n}"


paced = restate.Service("Paced")


async def paced_step(name: str, step: int, ms: int) -> str:
    """One step that takes ``ms``: ``start`` and ``done`` lines carry this execution's token and time."""
    token = uuid.uuid4().hex[:12]
    _line(f"{name}.steps", f"start {step} {token} {time.time():.6f}")
    await asyncio.sleep(ms / 1000)
    _line(f"{name}.steps", f"done {step} {token} {time.time():.6f}")
    return token


@paced.handler()
async def steps(ctx: restate.Context, req: dict) -> list[str]:
    """``n`` journaled steps of ``ms`` each; returns the token of each step's journaled execution."""
    tokens = []
    for i in range(req["n"]):
        tokens.append(await ctx.run_typed(f"s{i}", paced_step, restate.RunOptions(), req["name"], i, req["ms"]))
    return tokens


ticker = restate.Service("Ticker")


@ticker.handler()
async def tick(ctx: restate.Context, req: list[int]) -> None:
    """Counts one fired timer, ``[number, not_before_ms]``: one line, its number and the wall-clock
    milliseconds it ran at, so the test sees each fire and whether any came before its due time."""
    _line("ticks", f"{req[0]} {int(time.time() * 1000) - req[1]}")


@ticker.handler()
async def schedule(ctx: restate.Context, req: dict) -> int:
    """``count`` one-way calls to ``tick`` numbered from ``first``, each delayed by ``delay_ms``: each a
    durable timer. ``not_before_ms`` is a wall-clock time at or before the one they are due at."""
    for n in range(req["first"], req["first"] + req["count"]):
        ctx.service_send(tick, [n, req["not_before_ms"]], send_delay=timedelta(milliseconds=req["delay_ms"]))
    return req["count"]


app = restate.app([latched, paced, ticker])
