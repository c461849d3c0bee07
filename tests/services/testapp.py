"""Services the end-to-end tests run on Reprise, written with the official restate-sdk.

Side effects are counted as lines appended to files under $REPRISE_TEST_EFFECTS, one file per
effect name, so a test can prove a completed step never ran again.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import restate
from restate.exceptions import TerminalError

EFFECTS = Path(os.environ.get("REPRISE_TEST_EFFECTS", "/tmp/reprise-effects"))
EFFECTS.mkdir(parents=True, exist_ok=True)


def effect(name: str, value: str = "x") -> str:
    """Append one line to the effect's file and return ``value``."""
    with open(EFFECTS / name, "a") as f:
        f.write(value + "\n")
    return value


steps = restate.Service("Steps")


@steps.handler()
async def three(ctx: restate.Context, name: str) -> str:
    a = await ctx.run_typed("a", effect, restate.RunOptions(), f"{name}.a", "A")
    b = await ctx.run_typed("b", effect, restate.RunOptions(), f"{name}.b", "B")
    c = await ctx.run_typed("c", effect, restate.RunOptions(), f"{name}.c", "C")
    return f"{name}:{a}{b}{c}"


@steps.handler()
async def sleepy(ctx: restate.Context, req: dict) -> str:
    """A step, a durable sleep, a step: the engine can be killed during the sleep."""
    name = req["name"]
    await ctx.run_typed("before", effect, restate.RunOptions(), f"{name}.before")
    await ctx.sleep(timedelta(milliseconds=req["ms"]))
    await ctx.run_typed("after", effect, restate.RunOptions(), f"{name}.after")
    return "slept"


@steps.handler()
async def slow(ctx: restate.Context, name: str) -> str:
    """A step that takes a while in-process: the service can be killed in the middle of it."""
    async def work() -> str:
        effect(f"{name}.started")
        await asyncio.sleep(float(os.environ.get("REPRISE_TEST_SLOW_S", "4")))
        return effect(f"{name}.done", "done")

    return await ctx.run_typed("work", work, restate.RunOptions())


@steps.handler()
async def ids(ctx: restate.Context, name: str) -> dict:
    """uuid and random must be the same on every attempt: each attempt logs what it saw."""
    u = str(ctx.uuid())
    r = ctx.random().random()
    effect(f"{name}.seen", f"{u} {r}")
    await ctx.run_typed("step", effect, restate.RunOptions(), f"{name}.step")
    return {"uuid": u, "random": r}


errors = restate.Service("Errors")


@errors.handler()
async def terminal(ctx: restate.Context, message: str) -> str:
    raise TerminalError(message, status_code=400)


@errors.handler()
async def flaky(ctx: restate.Context, name: str) -> int:
    """Fails with a plain exception on the first two attempts, succeeds on the third."""
    attempts = len((EFFECTS / f"{name}.attempt").read_text().splitlines()) + 1 \
        if (EFFECTS / f"{name}.attempt").exists() else 1
    effect(f"{name}.attempt")
    if attempts < 3:
        raise RuntimeError(f"flaky failure {attempts}")
    return attempts


caller = restate.Service("Caller")


@caller.handler()
async def relay(ctx: restate.Context, name: str) -> str:
    """Service-to-service: call Steps.three and decorate its answer."""
    out = await ctx.service_call(three, name)
    return f"relayed {out}"


@caller.handler()
async def hello(ctx: restate.Context) -> str:
    """Takes no input: reachable with an empty body."""
    return "hello, nobody"


app = restate.app(services=[steps, errors, caller])
