"""One service deployed twice with different code (docs/upgrades.md): ``$VERSION`` (``v1``, ``v2``) is
what it answers. An invocation that began on v1 ends on v1: its journal was written by v1's code.

Run ``VERSION=v1 uvicorn examples.upgrade.app:app --port 9081`` and ``VERSION=v2 ... --port 9082``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import restate

VERSION = os.environ.get("VERSION", "v1")

versioned = restate.Service("Versioned")


@versioned.handler()
async def nap(ctx: restate.Context, ms: int) -> str:
    """Records the version that started it, sleeps (suspending), then says which code finished it."""
    started = await ctx.run_typed("started", lambda: VERSION, restate.RunOptions())
    await ctx.sleep(timedelta(milliseconds=ms))
    return f"started on {started}, finished on {VERSION}"


app = restate.app(services=[versioned])
