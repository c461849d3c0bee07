"""The service both engines run in the benchmarks (one restate-sdk process, served by hypercorn h2c).

``GET /_bench/greets`` answers how many times ``greet`` ran in this process, ``GET /_bench/adds``
how many times ``BenchCounter/add`` did: the one-way send rows use them to see how many of the sends
an engine accepted it has also executed.

The call rows' handlers (``BenchCaller``, ``BenchChainA``, ``BenchChainB``) make their calls and sends
through the engine, as a user's would: a fan-out of ``FAN_OUT`` parallel ``greet`` calls, a chain of
two objects and a plain service, and ``FAN_OUT`` one-way sends to ``BenchCounter`` keys.

With ``BENCH_TRACE=1`` the service also stamps each ``three_steps`` attempt (``time.monotonic()``):
the handler resuming, each step's closure running (in the SDK's executor thread), and every body the
app sends to or receives from hypercorn. ``GET /_bench/trace`` hands over what was stamped since the
last call, as JSON; ``tests/bench/step_split.py`` turns it into where a step's time goes.
"""

from __future__ import annotations

import json
import os
import time
from contextvars import ContextVar
from typing import Any

import restate

TRACE = os.environ.get("BENCH_TRACE") == "1"
_trace: ContextVar[list[tuple[str, float]] | None] = ContextVar("bench_trace", default=None)
TRACES: list[list[tuple[str, float]]] = []  # one list of (event, time) per traced attempt


def _stamp(event: str) -> None:
    if TRACE and (events := _trace.get()) is not None:
        events.append((event, time.monotonic()))


def _step(value: str) -> str:
    """A step's closure: the SDK runs it in its executor thread (the context, and so the trace, follows)."""
    _stamp("run")
    return value

greeter = restate.Service("BenchGreeter")
GREETS = 0
ADDS = 0
FAN_OUT = 5  # calls (fan_out) or sends (send_many) per request
SEND_KEYS = 1000  # send_many spreads its sends over this many BenchCounter keys (s0 .. s999)
ATTEMPTS = 0  # requests the engine made to the SDK app (attempts), greets or not


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    global GREETS
    GREETS += 1
    return f"Hello {name}"


@greeter.handler()
async def three_steps(ctx: restate.Context, name: str) -> str:
    _stamp("resume")
    a = await ctx.run_typed("a", lambda: _step("a"), restate.RunOptions())
    _stamp("resume")
    b = await ctx.run_typed("b", lambda: _step("b"), restate.RunOptions())
    _stamp("resume")
    c = await ctx.run_typed("c", lambda: _step("c"), restate.RunOptions())
    _stamp("resume")
    return name + a + b + c


counter = restate.VirtualObject("BenchCounter")


@counter.handler()
async def add(ctx: restate.ObjectContext, delta: int) -> int:
    global ADDS
    ADDS += 1
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


caller = restate.Service("BenchCaller")


@caller.handler()
async def fan_out(ctx: restate.Context, name: str) -> list[str]:
    """``FAN_OUT`` calls to a plain service, in parallel: each another invocation, answered back."""
    calls = [ctx.service_call(greet, f"{name}.{i}") for i in range(FAN_OUT)]
    await restate.gather(*calls)
    return [await call for call in calls]


@caller.handler()
async def send_many(ctx: restate.Context, n: int) -> None:
    """``FAN_OUT`` one-way sends to objects on as many keys (most on other partitions), not awaited."""
    for i in range(FAN_OUT):
        ctx.object_send(add, f"s{(n * FAN_OUT + i) % SEND_KEYS}", 1)


chain_a = restate.VirtualObject("BenchChainA")
chain_b = restate.VirtualObject("BenchChainB")


@chain_a.handler(name="call")
async def chain_a_call(ctx: restate.ObjectContext, name: str) -> str:
    """A -> B (another object, another key) -> greet (a plain service), request-response all the way."""
    return await ctx.object_call(chain_b_call, f"b-{ctx.key()}", name)


@chain_b.handler(name="call")
async def chain_b_call(ctx: restate.ObjectContext, name: str) -> str:
    return await ctx.service_call(greet, name)


sdk_app = restate.app(services=[greeter, counter, signup, caller, chain_a, chain_b])


def _traced(receive: Any, send: Any) -> tuple[Any, Any]:
    """receive and send that stamp every body passed between hypercorn and the SDK."""
    events: list[tuple[str, float]] = []
    TRACES.append(events)
    _trace.set(events)

    async def traced_receive() -> dict:
        message = await receive()
        if message.get("body"):
            events.append(("rx", time.monotonic()))
        return message

    async def traced_send(message: dict) -> None:
        if message.get("body"):
            events.append(("tx", time.monotonic()))
        await send(message)
    return traced_receive, traced_send


def _take_traces() -> bytes:
    taken = TRACES[:]
    del TRACES[:len(taken)]
    return json.dumps(taken).encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global ATTEMPTS
    if scope["type"] == "http" and scope["path"] in ("/_bench/greets", "/_bench/adds", "/_bench/attempts",
                                                     "/_bench/trace"):
        path = scope["path"]
        count = {"/_bench/greets": GREETS, "/_bench/adds": ADDS}.get(path, ATTEMPTS)
        body = _take_traces() if path == "/_bench/trace" else str(count).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] == "http":
        ATTEMPTS += 1
        if TRACE and scope["path"].endswith("/three_steps"):
            receive, send = _traced(receive, send)
    await sdk_app(scope, receive, send)
