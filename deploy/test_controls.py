"""Test controls of ``reprise dev``, for ``reprise.testing``: move durable timers' clock ahead, and crash
the process after n more journal entries.

They can skew time and kill the process, so they exist only where a test asked for them, and
nowhere else by construction:

* only when ``REPRISE_TEST_CONTROL_PORT`` names a port (no default, no flag of the CLI);
* only in ``reprise dev`` (one process, every partition): ``reprise processor`` and ``reprise
  ingress``, the roles of a cluster, refuse to start with it set;
* only on 127.0.0.1, on that port of their own (never on the admin API), and the engine says so in
  its log at start.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable

from aiohttp import web

from reprise.engine import faults
from reprise.partitions.leader.processor import PartitionProcessor

ENV = "REPRISE_TEST_CONTROL_PORT"
log = logging.getLogger("reprise")


def refusal(role: str) -> str | None:
    """Why this role must not start with the test controls requested, or None."""
    raw = os.environ.get(ENV)
    if raw is None:
        return None
    if role != "dev":
        return f"{ENV} is set: test controls exist only in 'reprise dev', never in a cluster's '{role}'"
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        return f"{ENV}={raw!r}: expected a port number"
    return None


async def open_if_requested(processor: PartitionProcessor | None) -> Callable[[], Awaitable[None]] | None:
    """Serve the controls on 127.0.0.1 if ``REPRISE_TEST_CONTROL_PORT`` asks for them; returns their close."""
    raw = os.environ.get(ENV)
    if raw is None or processor is None:
        return None
    timers = processor.timers

    async def advance(request: web.Request) -> web.Response:
        body = await request.json()
        ms = body.get("ms") if isinstance(body, dict) else None
        if not isinstance(ms, int) or ms < 0:
            return web.json_response({"message": "expected {\"ms\": a non-negative integer}"}, status=400)
        timers.advance(ms)
        return web.json_response({"skew_ms": timers.skew_ms})

    async def crash_after(request: web.Request) -> web.Response:
        body = await request.json()
        entries = body.get("entries") if isinstance(body, dict) else None
        if not isinstance(entries, int) or entries < 1:
            return web.json_response({"message": "expected {\"entries\": a positive integer}"}, status=400)
        faults.arm_journal_crash(entries)
        return web.json_response({"armed": entries})

    async def clock(_request: web.Request) -> web.Response:
        return web.json_response({"skew_ms": timers.skew_ms, "timers_loaded": timers.pending()})

    app = web.Application()
    app.router.add_post("/timers/advance", advance)
    app.router.add_get("/timers", clock)
    app.router.add_post("/crash-after", crash_after)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(raw)).start()
    log.warning("TEST MODE: test controls on 127.0.0.1:%s can advance durable timers and crash this process "
                "(%s is set; never set it outside tests)", raw, ENV)
    return runner.cleanup
