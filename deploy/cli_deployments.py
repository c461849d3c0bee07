"""``reprise deployments ls|describe|rm``: registered deployments over the admin API (docs/admin-api.md).

``describe`` shows how many invocations still run on a deployment (they stay on it until they end);
``rm`` removes one only when none does, unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from collections.abc import Callable
from typing import Any

AdminCall = Callable[[argparse.Namespace, str, str], "tuple[int, Any]"]


def _fail(status: int, out: Any) -> int:
    message = out.get("message", out) if isinstance(out, dict) else out
    print(f"reprise: {status or 'error'}: {message}", file=sys.stderr)
    return 1


def _latest(services: list[dict[str, Any]], admin: AdminCall, args: argparse.Namespace) -> dict[str, Any]:
    """Service name -> (deployment id, revision) of its newest revision."""
    status, out = admin(args, "GET", "/services")
    if status != 200:
        return {}
    wanted = {s["name"] for s in services}
    return {s["name"]: (s["deployment_id"], s["revision"]) for s in out["services"] if s["name"] in wanted}


def cmd_deployments(args: argparse.Namespace, admin: AdminCall) -> int:
    if args.action == "ls":
        status, out = admin(args, "GET", "/deployments")
        if status != 200:
            return _fail(status, out)
        if args.output == "json":
            print(json.dumps(out, indent=2))
            return 0
        print(f"{'ID':<27} {'URI':<32} {'CREATED':<24} SERVICES")
        for d in out["deployments"]:
            services = ", ".join(f"{s['name']} [{s['revision']}]" for s in d["services"])
            print(f"{d['id']:<27} {d['uri']:<32} {d['created_at'][:19] + 'Z':<24} {services}")
        return 0
    if not args.id:
        print(f"reprise: deployments {args.action} needs a deployment id", file=sys.stderr)
        return 2
    dep_id = urllib.parse.quote(args.id, safe="")
    if args.action == "rm":
        status, out = admin(args, "DELETE", f"/deployments/{dep_id}{'?force=true' if args.force else ''}")
        if status != 202:
            return _fail(status, out)
        print(json.dumps({"removed": args.id}) if args.output == "json" else f"deployment {args.id} removed")
        return 0
    status, out = admin(args, "GET", f"/deployments/{dep_id}")
    if status != 200:
        return _fail(status, out)
    if args.output == "json":
        print(json.dumps(out, indent=2))
        return 0
    active = out.get("active_invocations")
    print(f"id:                  {out['id']}\nuri:                 {out['uri']}\n"
          f"protocol:            {out['protocol_type']} over {out['http_version']}\n"
          f"sdk:                 {out.get('sdk_version') or '-'}\ncreated:             {out['created_at']}\n"
          f"running invocations: {'unknown (ask a process that holds every partition)' if active is None else active}")
    latest = _latest(out["services"], admin, args)
    print("services:")
    for s in out["services"]:
        newest = latest.get(s["name"])
        where = "latest" if newest == (out["id"], s["revision"]) else \
            f"latest is revision {newest[1]} on {newest[0]}" if newest else "not registered"
        print(f"  {s['name']:<24} {s['ty']:<14} revision {s['revision']} ({where})")
    return 0


def add_parser(sub: Any, common: Callable[..., None], admin: AdminCall) -> None:
    p = sub.add_parser("deployments", help="list, describe and remove service deployments")
    p.add_argument("action", choices=["ls", "describe", "rm"])
    p.add_argument("id", nargs="?", help="with describe and rm: the deployment id")
    p.add_argument("--force", action="store_true", help="with rm: remove it even while invocations still run on it")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.add_argument("--admin-port", type=int)
    common(p, kafka=False)
    p.set_defaults(fn=lambda a: cmd_deployments(a, admin))
