"""Services the end-to-end tests run on Reprise, written with the official restate-sdk.

Side effects are counted as lines appended to files under $REPRISE_TEST_EFFECTS, one file per
effect name, so a test can prove a completed step never ran again.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import restate
from restate.exceptions import TerminalError
from restate.retry_policy import InvocationRetryPolicy

from examples.objects.app import cart, greeter, ticket
from examples.workflows.app import signup, subscriptions

EFFECTS = Path(os.environ.get("REPRISE_TEST_EFFECTS", "/tmp/reprise-effects"))
EFFECTS.mkdir(parents=True, exist_ok=True)


def effect(name: str, value: str = "x") -> str:
    """Append one line to the effect's file and return ``value``."""
    with open(EFFECTS / name, "a") as f:
        f.write(value + "\n")
    return value


steps = restate.Service("Steps")


@steps.handler()
async def three(ctx: restate.Context, name: str) -> str:
    a = await ctx.run_typed("a", effect, restate.RunOptions(), f"{name}.a", "A")
    b = await ctx.run_typed("b", effect, restate.RunOptions(), f"{name}.b", "B")
    c = await ctx.run_typed("c", effect, restate.RunOptions(), f"{name}.c", "C")
    return f"{name}:{a}{b}{c}"


@steps.handler()
async def sleepy(ctx: restate.Context, req: dict) -> str:
    """A step, a durable sleep, a step: the engine can be killed during the sleep."""
    name = req["name"]
    await ctx.run_typed("before", effect, restate.RunOptions(), f"{name}.before")
    await ctx.sleep(timedelta(milliseconds=req["ms"]))
    await ctx.run_typed("after", effect, restate.RunOptions(), f"{name}.after")
    return "slept"


@steps.handler()
async def slow(ctx: restate.Context, name: str) -> str:
    """A step that takes a while in-process: the service can be killed in the middle of it."""
    async def work() -> str:
        effect(f"{name}.started")
        await asyncio.sleep(float(os.environ.get("REPRISE_TEST_SLOW_S", "4")))
        return effect(f"{name}.done", "done")

    return await ctx.run_typed("work", work, restate.RunOptions())


@steps.handler()
async def ids(ctx: restate.Context, name: str) -> dict:
    """uuid and random must be the same on every attempt: each attempt logs what it saw."""
    u = str(ctx.uuid())
    r = ctx.random().random()
    effect(f"{name}.seen", f"{u} {r}")
    await ctx.run_typed("step", fail_first_time, restate.RunOptions(), f"{name}.step")
    return {"uuid": u, "random": r}


def fail_first_time(name: str) -> str:
    """A step that fails (retryably) the first time, so the handler runs a second attempt."""
    first = not (EFFECTS / name).exists()
    effect(name)
    if first:
        raise RuntimeError(f"{name}: failing once on purpose")
    return name


errors = restate.Service("Errors")


@errors.handler()
async def terminal(ctx: restate.Context, message: str) -> str:
    raise TerminalError(message, status_code=400)


@errors.handler()
async def flaky(ctx: restate.Context, name: str) -> int:
    """Fails with a plain exception on the first two attempts, succeeds on the third."""
    attempts = len((EFFECTS / f"{name}.attempt").read_text().splitlines()) + 1 \
        if (EFFECTS / f"{name}.attempt").exists() else 1
    effect(f"{name}.attempt")
    if attempts < 3:
        raise RuntimeError(f"flaky failure {attempts}")
    return attempts


caller = restate.Service("Caller")


@caller.handler()
async def relay(ctx: restate.Context, name: str) -> str:
    """Service-to-service: call Steps.three and decorate its answer."""
    out = await ctx.service_call(three, name)
    return f"relayed {out}"


@caller.handler()
async def hello(ctx: restate.Context) -> str:
    """Takes no input: reachable with an empty body."""
    return "hello, nobody"


counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: restate.ObjectContext, delta: int) -> int:
    value = (await ctx.get("value", type_hint=int) or 0) + delta
    ctx.set("value", value)
    return value


@counter.handler(kind="shared")
async def get(ctx: restate.ObjectSharedContext) -> int:
    return await ctx.get("value", type_hint=int) or 0


@counter.handler()
async def hold(ctx: restate.ObjectContext, ms: int) -> str:
    """Holds the key: sets state, then suspends on a durable sleep."""
    ctx.set("value", 41)
    await ctx.sleep(timedelta(milliseconds=ms))
    return "held"


@counter.handler(kind="shared")
async def sneaky(ctx: restate.ObjectSharedContext) -> str:
    """A shared handler that tries to write: the engine refuses with a clear error."""
    ctx.set("value", -1)  # type: ignore[attr-defined]
    return "wrote"


@counter.handler()
async def fill(ctx: restate.ObjectContext, req: dict) -> int:
    """Writes ``n`` entries of ``size`` bytes, then reads them back (lazy state when large)."""
    for i in range(req["n"]):
        ctx.set(f"blob{i}", "x" * req["size"])
    return len(await ctx.state_keys())


@counter.handler()
async def total(ctx: restate.ObjectContext) -> int:
    """Reads every key: with a large state this goes through GetLazyState/GetLazyStateKeys."""
    keys = await ctx.state_keys()
    size = 0
    for k in keys:
        size += len(await ctx.get(k, type_hint=str) or "")
    return size


@counter.handler()
async def call_other(ctx: restate.ObjectContext, req: dict) -> str:
    """Calls another object (maybe on another partition) whose handler sleeps; counts its own effect."""
    out = await ctx.object_call(slow_step, key=req["target"], arg=req)
    await ctx.run_typed("after", effect, restate.RunOptions(), f"{req['name']}.caller")
    return f"caller got {out}"


@counter.handler()
async def slow_step(ctx: restate.ObjectContext, req: dict) -> str:
    await ctx.run_typed("before", effect, restate.RunOptions(), f"{req['name']}.callee.before")
    await ctx.sleep(timedelta(milliseconds=req["ms"]))
    await ctx.run_typed("after", effect, restate.RunOptions(), f"{req['name']}.callee.after")
    return "callee done"


@counter.handler()
async def stamp(ctx: restate.ObjectContext, name: str) -> None:
    """Records when it ran (wall clock, ms), for delayed-send tests."""
    import time

    await ctx.run_typed("stamp", effect, restate.RunOptions(), name, str(int(time.time() * 1000)))


@caller.handler()
async def idem(ctx: restate.Context, name: str) -> list[str]:
    """The same idempotency key twice: one execution of the callee, the same answer twice."""
    first = await ctx.service_call(three, name, idempotency_key=f"idem-{name}")
    second = await ctx.service_call(three, name, idempotency_key=f"idem-{name}")
    return [first, second]


@caller.handler()
async def later(ctx: restate.Context, req: dict) -> str:
    """A delayed one-way call: a durable timer on the engine, not a sleep in the handler."""
    ctx.object_send(stamp, key=req["key"], arg=req["name"], send_delay=timedelta(milliseconds=req["ms"]))
    return "scheduled"


@caller.handler()
async def fan_out(ctx: restate.Context, req: dict) -> int:
    """One-way calls Counter/<key>/add(1), ``n`` times, to one key: ``n`` outbox entries to one partition."""
    for _ in range(req["n"]):
        ctx.object_send(add, key=req["key"], arg=1)
    return req["n"]


@caller.handler()
async def call_unknown(ctx: restate.Context) -> str:
    return await ctx.generic_call("NoSuchService", "nope", b"")  # type: ignore[return-value]


napper = restate.Workflow("Napper")


@napper.main(name="run")
async def nap(ctx: restate.WorkflowContext, ms: int) -> str:
    """A workflow that sleeps between two steps (the engine is killed during the sleep)."""
    key = ctx.key()
    await ctx.run_typed("before", effect, restate.RunOptions(), f"{key}.before")
    await ctx.sleep(timedelta(milliseconds=ms))
    await ctx.run_typed("after", effect, restate.RunOptions(), f"{key}.after")
    return "rested"


waiter = restate.Service("Waiter")


@waiter.handler()
async def awake(ctx: restate.Context, name: str) -> str:
    """Publishes an awakeable id (in an effect file) and waits for someone to resolve it over HTTP."""
    awakeable_id, fut = ctx.awakeable(type_hint=str)
    await ctx.run_typed("publish", effect, restate.RunOptions(), f"{name}.awakeable", awakeable_id)
    return f"woken with {await fut}"


@waiter.handler()
async def chain(ctx: restate.Context, name: str) -> str:
    """A call chain for cancellation: chain -> leaf, which waits forever on an awakeable."""
    return await ctx.service_call(leaf, name)


@waiter.handler()
async def leaf(ctx: restate.Context, name: str) -> str:
    _, fut = ctx.awakeable(type_hint=str)
    await ctx.run_typed("leaf-started", effect, restate.RunOptions(), f"{name}.leaf", "started")
    try:
        return await fut
    except TerminalError as e:
        effect(f"{name}.leaf.cancelled", str(e.status_code))
        raise


@waiter.handler(invocation_retry_policy=InvocationRetryPolicy(
    initial_interval=timedelta(milliseconds=50), max_attempts=3, on_max_attempts="pause"))
async def always_fails(ctx: restate.Context, name: str) -> str:
    effect(f"{name}.attempt")
    raise RuntimeError("always failing")


@counter.handler()
async def slow_add(ctx: restate.ObjectContext, delta: int) -> int:
    """Adds after a pause inside the attempt: a processor can be frozen while it is in flight."""
    effect(f"{ctx.key()}.slow_add.started")
    await asyncio.sleep(float(os.environ.get("REPRISE_TEST_SLOW_S", "2")))
    value = (await ctx.get("value", type_hint=int) or 0) + delta
    ctx.set("value", value)
    return value


@counter.handler()
async def append(ctx: restate.ObjectContext, item: object) -> int:
    """Appends to a list in the object's state: order of arrival becomes visible."""
    items = await ctx.get("items", type_hint=list) or []
    ctx.set("items", [*items, item])
    return len(items) + 1


@counter.handler()
async def block(ctx: restate.ObjectContext, name: str) -> str:
    """Holds the object's key until resolved (or killed)."""
    _, fut = ctx.awakeable(type_hint=str)
    await ctx.run_typed("blocking", effect, restate.RunOptions(), f"{name}.blocking")
    return await fut


@steps.handler()
async def big_run(ctx: restate.Context, size: int) -> int:
    """A step whose result weighs ``size`` bytes (the limits' tests cross them with it)."""
    value = await ctx.run_typed("big", lambda: "a" * size, restate.RunOptions())
    return len(value)


@steps.handler()
async def big_output(ctx: restate.Context, size: int) -> str:
    return "a" * size


@counter.handler()
async def big_state(ctx: restate.ObjectContext, size: int) -> int:
    ctx.set("big", "a" * size)
    return size


app = restate.app(services=[steps, errors, caller, counter, greeter, ticket, cart, signup, subscriptions, napper,
                            waiter])
