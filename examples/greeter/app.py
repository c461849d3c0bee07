"""The example service of ``make demo``: a greeter written with the official Restate Python SDK.

Run it with ``uvicorn examples.greeter.app:app --port 9080`` (HTTP/1.1) or
``hypercorn examples.greeter.app:app --bind 127.0.0.1:9080`` (h2c), then register it with Reprise.
"""

from __future__ import annotations

from datetime import timedelta

import restate
from restate.exceptions import TerminalError

greeter = restate.Service("Greeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    if not name:
        raise TerminalError("name must not be empty", status_code=400)
    # Each step is journaled: after a crash it is replayed, never run again.
    greeting_id = await ctx.run_typed("make id", lambda: str(ctx.uuid())[:8], restate.RunOptions())
    await ctx.sleep(timedelta(milliseconds=100))
    shout = await ctx.run_typed("shout", lambda: name.upper(), restate.RunOptions())
    return f"Hello, {shout}! (greeting {greeting_id})"


@greeter.handler()
async def twice(ctx: restate.Context, name: str) -> str:
    """Calls greet twice through the engine: service-to-service calls are durable too."""
    first = await ctx.service_call(greet, name)
    second = await ctx.service_call(greet, name + " again")
    return f"{first} / {second}"


app = restate.app(services=[greeter])
