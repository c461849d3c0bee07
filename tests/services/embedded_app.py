"""A restate-sdk app the tests run embedded in the engine (REPRISE_EMBEDDED_APP), with a handler that
blocks its thread the way careless code does (time.sleep in a loop, no await)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import restate

EFFECTS = Path(os.environ.get("REPRISE_TEST_EFFECTS", "/tmp/reprise-effects"))

embedded = restate.Service("Embedded")


@embedded.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    stamp = await ctx.run_typed("pid", lambda: str(os.getpid()), restate.RunOptions())
    return f"hello {name} from {stamp}"


blocking = restate.Service("Blocking")


@blocking.handler()
async def hold(ctx: restate.Context, name: str) -> str:
    """Blocks its event loop until the test creates ``<name>.release``."""
    (EFFECTS / f"{name}.started").write_text("x")
    while not (EFFECTS / f"{name}.release").exists():
        time.sleep(0.05)
    return f"{name} released"


app = restate.app([embedded, blocking])
