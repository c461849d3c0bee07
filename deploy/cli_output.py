"""What listing and describe commands print: a table for people (the default), JSON for scripts.

``--output json`` prints the admin API's own body (its fields are documented in docs/http-api.md),
or for local commands an object whose fields docs/cli.md lists; the table shows the same rows.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

FORMATS = ("table", "json")


def add_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=FORMATS, default="table",
                   help="table (default) for people, json for scripts")


def wants_json(args: argparse.Namespace) -> bool:
    return getattr(args, "output", "table") == "json"


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns as wide as their widest cell, the last one left ragged."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) if i < len(widths) - 1 else c for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def fields(pairs: Sequence[tuple[str, object]]) -> str:
    """A describe's ``name: value`` lines, values that are objects as compact JSON."""
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{k + ':':<{width + 1}} {v if isinstance(v, str) else json.dumps(v)}" for k, v in pairs)


def emit(args: argparse.Namespace, data: Any, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> int:
    """Print ``data`` as JSON or ``rows`` as a table; 0."""
    if wants_json(args):
        print_json(data)
    else:
        print(table(headers, rows))
    return 0


def emit_fields(args: argparse.Namespace, data: Any, pairs: Sequence[tuple[str, object]]) -> int:
    if wants_json(args):
        print_json(data)
    else:
        print(fields(pairs))
    return 0
