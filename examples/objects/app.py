"""Virtual Objects on Reprise: the reference GreeterObject and the cart/ticket flow.

A Virtual Object has state per key; its exclusive handlers run one at a time per key, in arrival
order, while shared handlers may run beside them and only read. Serve with
``hypercorn examples.objects.app:app --bind 127.0.0.1:9081`` and register it with Reprise.
"""

from __future__ import annotations

import restate

greeter = restate.VirtualObject("GreeterObject")


@greeter.handler()
async def greet(ctx: restate.ObjectContext, greeting: str) -> str:
    count = (await ctx.get("count", type_hint=int) or 0) + 1
    ctx.set("count", count)
    return f"{greeting} {ctx.key()} for the {count}. time"


@greeter.handler()
async def ungreet(ctx: restate.ObjectContext) -> str:
    count = await ctx.get("count", type_hint=int) or 0
    if count > 0:
        ctx.set("count", count - 1)
    return f"Dear {ctx.key()}, taking one greeting back: {max(count - 1, 0)}."


@greeter.handler(kind="shared")
async def getGreetCount(ctx: restate.ObjectSharedContext) -> int:  # noqa: N802 - the reference name
    return await ctx.get("count", type_hint=int) or 0


ticket = restate.VirtualObject("TicketObject")


@ticket.handler()
async def reserve(ctx: restate.ObjectContext) -> bool:
    """A seat is reserved at most once: the first cart to ask gets it."""
    if await ctx.get("status", type_hint=str) in ("RESERVED", "SOLD"):
        return False
    ctx.set("status", "RESERVED")
    return True


@ticket.handler()
async def unreserve(ctx: restate.ObjectContext) -> None:
    if await ctx.get("status", type_hint=str) != "SOLD":
        ctx.clear("status")


cart = restate.VirtualObject("CartObject")


@cart.handler()
async def addTicket(ctx: restate.ObjectContext, ticket_id: str) -> bool:  # noqa: N802
    """Reserve the seat (a call to another object, perhaps on another partition), then keep it."""
    reserved = await ctx.object_call(reserve, key=ticket_id, arg=None)
    if reserved:
        tickets = await ctx.get("tickets", type_hint=list[str]) or []
        ctx.set("tickets", [*tickets, ticket_id])
    return reserved


@cart.handler(kind="shared")
async def getTickets(ctx: restate.ObjectSharedContext) -> list[str]:  # noqa: N802
    return await ctx.get("tickets", type_hint=list[str]) or []


app = restate.app(services=[greeter, ticket, cart])
