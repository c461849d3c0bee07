"""The service both engines run in the benchmarks (one restate-sdk process, served by hypercorn h2c)."""

from __future__ import annotations

import restate

greeter = restate.Service("BenchGreeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
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


app = restate.app(services=[greeter, counter, signup])
