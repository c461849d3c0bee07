"""A service in two versions for the replay check (``reprise replay``): this is the one that recorded
the journals. ``replay_v2`` is the next release: ``Steps/swapped`` takes its two steps in the other
order (a non-deterministic change), ``Steps/unchanged`` is the same code."""

from __future__ import annotations

from datetime import timedelta

import restate

steps = restate.Service("Steps")


@steps.handler()
async def swapped(ctx: restate.Context, name: str) -> str:
    first = await ctx.run_typed("fetch", lambda: f"fetched {name}", restate.RunOptions())
    second = await ctx.run_typed("store", lambda: "stored", restate.RunOptions())
    return f"{first}, {second}"


@steps.handler()
async def unchanged(ctx: restate.Context, name: str) -> str:
    first = await ctx.run_typed("fetch", lambda: f"fetched {name}", restate.RunOptions())
    second = await ctx.run_typed("store", lambda: "stored", restate.RunOptions())
    return f"{first}, {second}"


@steps.handler()
async def napping(ctx: restate.Context, name: str) -> str:
    """Stays in flight: its journal ends at a sleep of an hour."""
    first = await ctx.run_typed("fetch", lambda: f"fetched {name}", restate.RunOptions())
    await ctx.sleep(timedelta(hours=1))
    second = await ctx.run_typed("store", lambda: "stored", restate.RunOptions())
    return f"{first}, {second}"


app = restate.app([steps])
