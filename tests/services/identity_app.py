"""A restate-sdk service that accepts only requests signed with the key in $REPRISE_TEST_IDENTITY_KEY
(the SDK's own request identity verification: ``identity_keys``)."""

from __future__ import annotations

import os

import restate

signed = restate.Service("Signed")


@signed.handler()
async def hello(ctx: restate.Context, name: str) -> str:
    step = await ctx.run_typed("step", lambda: f"hello {name}")  # a second attempt in request/response mode
    return step


app = restate.app(services=[signed], identity_keys=[os.environ["REPRISE_TEST_IDENTITY_KEY"]])
