"""A restate-sdk service for the schedules' tests: each invocation records, once (in a ``ctx.run``),
the tick that started it, from the header the schedule sets, as a line of the ``ticks`` effect file."""

from __future__ import annotations

import os
from pathlib import Path

import restate

EFFECTS = Path(os.environ.get("REPRISE_TEST_EFFECTS", "/tmp/reprise-effects"))
EFFECTS.mkdir(parents=True, exist_ok=True)

ticks = restate.Service("Ticks")


def _append(line: str) -> str:
    with open(EFFECTS / "ticks", "a") as f:
        f.write(line + "\n")
    return line


@ticks.handler()
async def record(ctx: restate.Context, body: str) -> str:
    tick = ctx.request().headers.get("x-reprise-schedule-tick", "none")
    return await ctx.run_typed("record", _append, restate.RunOptions(), f"{tick} {body}")


app = restate.app([ticks])
