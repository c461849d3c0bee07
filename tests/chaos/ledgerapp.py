"""The chaos run's services (restate-sdk): every journaled side effect is written to a ledger file.

A side effect inside ``ctx.run`` writes one ledger line with a fresh token and returns the token,
which the journal keeps. An execution whose result was journaled is the one the handler goes on
with; any other execution of the same step (a crash before its result reached the log) left a
line whose token nowhere appears in the journal. The checker tells the two apart.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import restate

LEDGER = Path(os.environ.get("REPRISE_CHAOS_LEDGER", "/tmp/reprise-chaos-ledger"))
LEDGER.mkdir(parents=True, exist_ok=True)
# Sabotage, to prove the checker (tests/integration/test_chaos.py): the first N effects happen twice.
_duplicates_left = int(os.environ.get("REPRISE_CHAOS_DUPLICATE_EFFECTS", "0"))


def record(kind: str, op: str, amount: int) -> str:
    """Append ``kind op amount token`` to this process's ledger file; the token is the step's result."""
    global _duplicates_left
    token = uuid.uuid4().hex
    times = 2 if _duplicates_left > 0 else 1
    _duplicates_left -= 1
    with open(LEDGER / f"ledger-{os.getpid()}", "a") as f:
        f.write(f"{kind} {op} {amount} {token}\n" * times)
    return token


account = restate.VirtualObject("Account")


@account.handler()
async def deposit(ctx: restate.ObjectContext, req: dict) -> dict:
    """Record the deposit in the ledger, then add it to the balance: both exactly once."""
    token = await ctx.run_typed("ledger", record, restate.RunOptions(), "deposit", req["op"], req["amount"])
    balance = (await ctx.get("balance", type_hint=int) or 0) + req["amount"]
    ctx.set("balance", balance)
    return {"op": req["op"], "token": token, "balance": balance}


@account.handler(kind="shared")
async def balance(ctx: restate.ObjectSharedContext) -> int:
    return await ctx.get("balance", type_hint=int) or 0


steps = restate.Service("Steps")


@steps.handler()
async def two(ctx: restate.Context, req: dict) -> dict:
    """Two journaled effects in a row (a plain service: no state)."""
    first = await ctx.run_typed("first", record, restate.RunOptions(), "first", req["op"], 0)
    second = await ctx.run_typed("second", record, restate.RunOptions(), "second", req["op"], 0)
    return {"op": req["op"], "tokens": [first, second]}


app = restate.app([account, steps])
