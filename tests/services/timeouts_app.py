"""Services with their own inactivity and abort timeouts (tests/integration/test_attempt_timeouts.py).

Each attempt of a ``hang`` handler appends a line to ``<name>.attempt`` under $REPRISE_TEST_EFFECTS
and then blocks in user code, never talking to the runtime again: only an abort ends it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import restate

from tests.services.testapp import effect

# (a) suspends 1.5 s after it last heard anything, keeping its progress
patient = restate.Service("Patient", inactivity_timeout=timedelta(seconds=1.5))


@patient.handler()
async def wait(ctx: restate.Context, name: str) -> str:
    awakeable_id, fut = ctx.awakeable(type_hint=str)
    await ctx.run_typed("publish", effect, restate.RunOptions(), f"{name}.awakeable", awakeable_id)
    return f"woken with {await fut}"


async def hang(ctx: restate.Context, name: str) -> str:
    effect(f"{name}.attempt")  # not journaled: once per attempt
    await asyncio.sleep(3600)  # stuck in user code: no message to the runtime
    return "never"


# (b) asked to suspend after 1 s of silence, aborted 1 s later
stuck = restate.Service("Stuck", inactivity_timeout=timedelta(seconds=1), abort_timeout=timedelta(seconds=1))
stuck.handler(name="hang")(hang)
# request/response (an inactivity timeout of 0, as in Restate): only the abort timeout applies
stuck_rr = restate.Service("StuckRequestResponse", inactivity_timeout=timedelta(0), abort_timeout=timedelta(seconds=1))
stuck_rr.handler(name="hang")(hang)
# (c) no timeouts of its own: the engine's
plain = restate.Service("Plain")
plain.handler(name="hang")(hang)

app = restate.app(services=[patient, stuck, stuck_rr, plain])

# served over HTTP/1.1 (uvicorn; registered with use_http_11): request/response, the abort timeout only
stuck_http1 = restate.Service("StuckHttp1", abort_timeout=timedelta(seconds=1))
stuck_http1.handler(name="hang")(hang)
http1_app = restate.app(services=[stuck_http1])
