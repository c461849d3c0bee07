"""The service both engines run in the benchmarks (one restate-sdk process, served by hypercorn h2c).

``GET /_bench/greets`` answers how many times ``greet`` ran in this process: the one-way send rows
use it to see how many of the sends an engine accepted it has also executed.
"""

from __future__ import annotations

from typing import Any

import restate

greeter = restate.Service("BenchGreeter")
GREETS = 0
ATTEMPTS = 0  # requests the engine made to the SDK app (attempts), greets or not


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    global GREETS
    GREETS += 1
    return f"Hello {name}"


@greeter.handler()
async def three_steps(ctx: restate.Context, name: str) -> str:
    a = await ctx.run_typed("a", lambda: "a", restate.RunOptions())
    b = await ctx.run_typed("b", lambda: "b", restate.RunOptions())
    c = await ctx.run_typed("c", lambda: "c", restate.RunOptions())
    return name + a + b + c


counter = restate.VirtualObject("BenchCounter")


@counter.handler()
async def add(ctx: restate.ObjectContext, delta: int) -> int:
    value = (await ctx.get("value", type_hint=int) or 0) + delta
    ctx.set("value", value)
    return value


signup = restate.Workflow("BenchSignup")


@signup.main(name="run")
async def run(ctx: restate.WorkflowContext, email: str) -> bool:
    ctx.set("email", email)
    return await ctx.promise("click", type_hint=str).value() == "ok"


@signup.handler()
async def click(ctx: restate.WorkflowSharedContext, secret: str) -> None:
    await ctx.promise("click", type_hint=str).resolve(secret)


sdk_app = restate.app(services=[greeter, counter, signup])


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global ATTEMPTS
    if scope["type"] == "http" and scope["path"] in ("/_bench/greets", "/_bench/attempts"):
        body = str(GREETS if scope["path"] == "/_bench/greets" else ATTEMPTS).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] == "http":
        ATTEMPTS += 1
    await sdk_app(scope, receive, send)
