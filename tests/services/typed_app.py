"""Services with typed inputs and outputs (pydantic models, plain types, raw bytes, no input): what a
service's OpenAPI document (``GET /services/{s}/openapi``) is generated from.

A plain service, a virtual object (exclusive and shared handlers) and a workflow (its run handler
and a shared one), so the document has unkeyed and keyed paths of each kind.
"""

from __future__ import annotations

from datetime import timedelta

import restate
from pydantic import BaseModel


class Order(BaseModel):
    """An order to place."""

    item: str
    quantity: int = 1
    gift: bool = False


class Line(BaseModel):
    item: str
    cents: int


class Receipt(BaseModel):
    order_id: str
    total_cents: int
    lines: list[Line]


class Tally(BaseModel):
    count: int


shop = restate.Service("Shop", description="Places orders.")


@shop.handler()
async def place(_ctx: restate.Context, order: Order) -> Receipt:
    """Place an order and get its receipt."""
    cents = 100 * order.quantity
    return Receipt(order_id=f"o-{order.item}", total_cents=cents, lines=[Line(item=order.item, cents=cents)])


@shop.handler()
async def ping(_ctx: restate.Context) -> str:
    return "pong"


@shop.handler(accept="application/octet-stream", content_type="application/octet-stream")
async def echo_bytes(_ctx: restate.Context, data: bytes) -> bytes:
    return data


@shop.handler(idempotency_retention=timedelta(hours=2))
async def note(_ctx: restate.Context, text: str) -> None:
    return None


tally = restate.VirtualObject("Tally")


@tally.handler()
async def add(ctx: restate.ObjectContext, by: int) -> Tally:
    count = (await ctx.get("count", type_hint=int) or 0) + by
    ctx.set("count", count)
    return Tally(count=count)


@tally.handler(kind="shared")
async def current(ctx: restate.ObjectSharedContext) -> Tally:
    return Tally(count=await ctx.get("count", type_hint=int) or 0)


approval = restate.Workflow("Approval")


@approval.main(name="run")
async def run(ctx: restate.WorkflowContext, order: Order) -> bool:
    return await ctx.promise("decision", type_hint=bool).value()


@approval.handler()
async def decide(ctx: restate.WorkflowSharedContext, yes: bool) -> None:
    await ctx.promise("decision", type_hint=bool).resolve(yes)


app = restate.app([shop, tally, approval])
