"""``reprise replay``: replay the journals the log recorded against a deployment of new code.

Reads the journals from the log (``partitions/state/recorded.py``), replays each against the
deployment (``partitions/invoker/replay.py``) and prints one verdict per invocation: ``ok``, or
``diverged`` at the first journal entry where the new code took another path (Restate's journal
mismatch, 570). Nothing is written anywhere. Exit 0 when every invocation replayed clean, 1 when
any diverged or could not be replayed, 2 for bad arguments or a log that cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from reprise.engine.config import Config

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``2h``, ``7d``, ``500ms`` (or a bare number of seconds) -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", text)
    if m is None:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a duration such as 90s, 15m, 2h or 7d")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def add_parser(sub: argparse._SubParsersAction, common: Callable[[argparse.ArgumentParser], None],
               config: Callable[[argparse.Namespace], Config]) -> None:
    p = sub.add_parser("replay", help="replay recorded journals against new code; report where it diverges "
                                      "(docs/replay.md)")
    p.add_argument("--deployment", required=True, metavar="URI",
                   help="the new code: http://host:port (h2c; --http1 for HTTP/1.1) or embedded://module:app")
    p.add_argument("--http1", action="store_true", help="the deployment speaks HTTP/1.1 (e.g. uvicorn)")
    p.add_argument("--service", help="only this service's invocations")
    p.add_argument("--invocation", metavar="ID", help="only this invocation")
    p.add_argument("--since", type=parse_duration, metavar="DURATION",
                   help="only invocations created within this long (e.g. 2h, 7d)")
    p.add_argument("--output", choices=["text", "json"], default="text")
    common(p)
    p.set_defaults(fn=lambda args: cmd_replay(args, config(args)))


def cmd_replay(args: argparse.Namespace, cfg: Config) -> int:
    from confluent_kafka import KafkaException

    from reprise.engine.ids import InvocationId

    if args.invocation is not None:
        try:
            InvocationId.parse(args.invocation)
        except ValueError as e:
            print(f"reprise: --invocation: {e}", file=sys.stderr)
            return 2
    since_ms = int((time.time() - args.since) * 1000) if args.since is not None else None
    if args.deployment.startswith("embedded://"):
        # the SDK, in this process, logs every mismatch it answers with (a traceback each): the report says it once
        logging.getLogger("restate").setLevel(logging.CRITICAL)
    try:
        results = asyncio.run(_replay_all(cfg, args.deployment, args.http1, args.service, args.invocation, since_ms))
    except (RuntimeError, KafkaException) as e:  # no log topic, or no broker: nothing to replay from
        print(f"reprise: {e}", file=sys.stderr)
        return 2
    not_ok = [r for r in results if r["verdict"] != "ok"]
    if args.output == "json":
        print(json.dumps({"replayed": len(results), "ok": len(results) - len(not_ok),
                          "diverged": sum(r["verdict"] == "diverged" for r in results),
                          "errors": sum(r["verdict"] == "error" for r in results), "invocations": results}, indent=2))
    else:
        for r in results:
            print(_line(r))
        print(f"{len(results)} replayed, {len(results) - len(not_ok)} ok, "
              f"{sum(r['verdict'] == 'diverged' for r in results)} diverged, "
              f"{sum(r['verdict'] == 'error' for r in results)} could not be replayed")
    return 1 if not_ok else 0


def _line(r: dict[str, Any]) -> str:
    head = f"{r['invocation_id']}  {r['status']:<10} {r['target']:<40} {r['verdict']}"
    if r["verdict"] == "diverged":
        recorded = r["recorded"] or {}
        where = (f" at entry {r['entry']} (command {r['command_index']}: recorded {recorded.get('type')}"
                 f"{' ' + repr(recorded['name']) if recorded.get('name') else ''})" if r["entry"] is not None else "")
        detail = r["message"].splitlines()
        return head + where + "".join(f"\n    {line}" for line in detail[2:] or detail)
    if r["verdict"] == "error":
        return head + f": {r['message']}"
    if r["side_effects"]:  # a step's closure ran: the SDK executed it (never expected; reported if it happens)
        return head + f" (but the new code ran steps: {', '.join(r['side_effects'])})"
    return head


async def _replay_all(cfg: Config, uri: str, http1: bool, service: str | None, invocation: str | None,
                      since_ms: int | None) -> list[dict[str, Any]]:
    from reprise.partitions.invoker.replay import ReplayTarget
    from reprise.partitions.state.recorded import recorded_invocations

    loop = asyncio.get_running_loop()
    recorded = await loop.run_in_executor(None, lambda: list(recorded_invocations(cfg, service, invocation, since_ms)))
    deployment = ReplayTarget(uri, http1=http1)
    try:
        results = []
        for inv in sorted(recorded, key=lambda r: r.created_ms):
            result = await deployment.replay(inv.invocation_id, inv.service, inv.handler, inv.key, inv.status,
                                             inv.journal)
            results.append(result.to_json())
        return results
    finally:
        await deployment.close()
