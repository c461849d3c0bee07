"""The next release of ``replay_v1``: ``Steps/swapped`` stores before it fetches; the rest is the same.
Its steps write a file per executed closure (``REPRISE_TEST_EFFECTS``), so a test can see that a
replay ran none of them."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import restate

steps = restate.Service("Steps")


def _effect(name: str, value: str) -> str:
    effects = Path(os.environ.get("REPRISE_TEST_EFFECTS", "/tmp/reprise-effects"))
    effects.mkdir(parents=True, exist_ok=True)
    (effects / f"replay-v2-{name}-{os.getpid()}").write_text(value)
    return value


@steps.handler()
async def swapped(ctx: restate.Context, name: str) -> str:
    second = await ctx.run_typed("store", lambda: _effect("store", "stored"), restate.RunOptions())
    first = await ctx.run_typed("fetch", lambda: _effect("fetch", f"fetched {name}"), restate.RunOptions())
    return f"{first}, {second}"


@steps.handler()
async def unchanged(ctx: restate.Context, name: str) -> str:
    first = await ctx.run_typed("fetch", lambda: _effect("fetch", f"fetched {name}"), restate.RunOptions())
    second = await ctx.run_typed("store", lambda: _effect("store", "stored"), restate.RunOptions())
    return f"{first}, {second}"


@steps.handler()
async def napping(ctx: restate.Context, name: str) -> str:
    first = await ctx.run_typed("fetch", lambda: _effect("fetch", f"fetched {name}"), restate.RunOptions())
    await ctx.sleep(timedelta(hours=1))
    second = await ctx.run_typed("store", lambda: _effect("store", "stored"), restate.RunOptions())
    return f"{first}, {second}"


app = restate.app([steps])
