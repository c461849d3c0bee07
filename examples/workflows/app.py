"""Workflows on Reprise: the reference SignupWorkflow and SubscriptionService.

SignupWorkflow's ``run`` executes once per workflow id: it creates the user, emails a secret link,
and waits (hours, days: a durable promise costs nothing while it waits) for ``click``, a shared
handler that resolves the promise. Serve with ``hypercorn examples.workflows.app:app --bind 127.0.0.1:9082``.
"""

from __future__ import annotations

import os
from pathlib import Path

import restate

OUTBOX = Path(os.environ.get("REPRISE_EXAMPLE_OUTBOX", "/tmp/reprise-example-outbox"))


def _record(kind: str, line: str) -> None:
    """Stand-in for a real side effect (a database insert, an email): one line per execution."""
    OUTBOX.mkdir(parents=True, exist_ok=True)
    with open(OUTBOX / kind, "a") as f:
        f.write(line + "\n")


signup = restate.Workflow("SignupWorkflow")


@signup.main(name="run")
async def run(ctx: restate.WorkflowContext, user: dict) -> bool:
    user_id = ctx.key()
    await ctx.run_typed("create user", _record, restate.RunOptions(), "users", f"{user_id} {user.get('email')}")
    secret = str(ctx.uuid())
    ctx.set("status", "waiting for the email link")
    await ctx.run_typed("send email", _record, restate.RunOptions(), "emails",
                        f"{user.get('email')} /click?secret={secret}")
    clicked = await ctx.promise("link-clicked", type_hint=str).value()
    ctx.set("status", "verified" if clicked == secret else "wrong secret")
    return clicked == secret


@signup.handler()
async def click(ctx: restate.WorkflowSharedContext, secret: str) -> None:
    await ctx.promise("link-clicked", type_hint=str).resolve(secret)


@signup.handler(name="getStatus")
async def get_status(ctx: restate.WorkflowSharedContext) -> str:
    return await ctx.get("status", type_hint=str) or "unknown"


subscriptions = restate.Service("SubscriptionService")


@subscriptions.handler()
async def add(ctx: restate.Context, req: dict) -> str:
    """One payment and one subscription per item, each exactly once, however often this is retried."""
    payment_id = str(ctx.uuid())
    await ctx.run_typed("pay", _record, restate.RunOptions(), "payments", f"{req['user']} {payment_id}")
    for item in req["items"]:
        await ctx.run_typed(f"subscribe {item}", _record, restate.RunOptions(), "subscriptions",
                            f"{req['user']} {item}")
    return f"subscribed {req['user']} to {len(req['items'])} items"


app = restate.app(services=[signup, subscriptions])
