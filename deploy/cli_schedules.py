"""``reprise schedules create|ls|describe|pause|resume|rm``: durable cron schedules over the admin API
(docs/schedules.md)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

AdminCall = Callable[[argparse.Namespace, str, str, object], tuple[int, Any]]
Printer = Callable[[int, object], int]


def cmd_schedules(args: argparse.Namespace, admin: AdminCall, show: Printer) -> int:
    if args.action == "create":
        return _create(args, admin, show)
    if args.action == "ls":
        status, out = admin(args, "GET", "/schedules", None)
        if status != 200 or args.output == "json":
            return show(status, out)
        for s in out["schedules"]:
            state = "paused" if s["paused"] else (s["next_fire_times"] or ["-"])[0]
            print(f"{s['id']:<28} {s['cron']:<20} {s['timezone']:<16} {s['target']:<36} next={state} "
                  f"fired={s['fired']}")
        return 0
    if not args.id:
        print(f"reprise: {args.action} needs a schedule id", file=sys.stderr)
        return 2
    if args.action == "describe":
        status, out = admin(args, "GET", f"/schedules/{args.id}", None)
        if status != 200 or args.output == "json":
            return show(status, out)
        _describe(out)
        return 0
    if args.action == "rm":
        return show(*admin(args, "DELETE", f"/schedules/{args.id}", None))
    return show(*admin(args, "PATCH", f"/schedules/{args.id}/{args.action}", None))


def _create(args: argparse.Namespace, admin: AdminCall, show: Printer) -> int:
    if not args.cron or not args.target:
        print("reprise: create needs --cron EXPR --target Service/handler|Object/key/handler|Workflow/id/run",
              file=sys.stderr)
        return 2
    body: dict[str, Any] = {"cron": args.cron, "target": args.target, "timezone": args.tz, "catch_up": args.catch_up}
    if args.id:
        body["id"] = args.id
    if args.body is not None:
        try:
            body["body"] = json.loads(args.body)
        except ValueError as e:
            print(f"reprise: --body is not JSON: {e}", file=sys.stderr)
            return 2
    return show(*admin(args, "POST", "/schedules", body))


def _describe(s: dict[str, Any]) -> None:
    rows = [("id", s["id"]), ("cron", f"{s['cron']} ({s['timezone']})"), ("target", s["target"]),
            ("body", s["body"]), ("catch-up", s["catch_up"]), ("paused", s["paused"]),
            ("fired", s["fired"]), ("skipped", s["skipped"]), ("partition", s.get("partition"))]
    for name, value in rows:
        print(f"{name + ':':<12} {value}")
    print("next fires:  " + (", ".join(s["next_fire_times"]) or "-"))
    last = s.get("last_outcome")
    if s["last_invocation_id"]:
        outcome = (f"{last['status']}" + (f", failure {last['failure']['code']}: {last['failure']['message']}"
                                          if last["failure"] else "")) if last else "not held by this process"
        print(f"last fire:   tick {s['last_tick_ms']} -> {s['last_invocation_id']} ({outcome})")


def add_parser(sub: argparse._SubParsersAction, common: Callable[..., None], admin: AdminCall,
               show: Printer) -> None:
    p = sub.add_parser("schedules", help="durable cron schedules that invoke a handler (docs/schedules.md)")
    p.add_argument("action", choices=["create", "ls", "describe", "pause", "resume", "rm"])
    p.add_argument("id", nargs="?", help="with describe, pause, resume, rm: the schedule id")
    p.add_argument("--cron", help="with create: five fields, or six with a leading seconds field")
    p.add_argument("--target", help="with create: Service/handler, Object/key/handler or Workflow/id/run")
    p.add_argument("--body", help="with create: the JSON body of every fire")
    p.add_argument("--tz", default="UTC", help="with create: the IANA time zone of the expression (default UTC)")
    p.add_argument("--catch-up", choices=["skip", "once", "all"], default="once",
                   help="with create: what fires after downtime (default once)")
    p.add_argument("--id", dest="new_id", help="with create: the schedule's id (default: a generated one)")
    p.add_argument("--output", choices=["text", "json"], default="text", help="with ls and describe")
    p.add_argument("--admin-port", type=int)
    common(p, kafka=False)
    p.set_defaults(fn=lambda a: cmd_schedules(_with_new_id(a), admin, show))


def _with_new_id(args: argparse.Namespace) -> argparse.Namespace:
    """``create --id NAME`` names the new schedule; the positional id names an existing one."""
    if args.action == "create":
        args.id = args.new_id or args.id
    return args
