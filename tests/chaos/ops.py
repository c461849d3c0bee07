"""The chaos run's invocations and its one HTTP call: what was sent, and what acknowledged it."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Op:
    id: str
    path: str
    body: dict[str, Any]
    account: str | None = None
    amount: int = 0
    invocation_id: str | None = None  # from the acknowledgement: the 202's body, the 200's x-restate-id
    acked_result: Any = None  # a 200's body, as the client got it
    result: Any = None  # the result the engine keeps, fetched by invocation id
    attempts: int = 0

    @property
    def is_send(self) -> bool:
        return self.path.endswith("/send")


def make_ops(n: int, accounts: int, rng: random.Random) -> list[Op]:
    ops = []
    for i in range(n):
        op_id = f"op{i:06d}"
        roll = rng.random()
        if roll < 0.8:
            account, amount = f"a{rng.randrange(accounts)}", rng.randint(1, 100)
            path = f"/Account/{account}/deposit" + ("/send" if roll < 0.2 else "")
            ops.append(Op(op_id, path, {"op": op_id, "amount": amount}, account, amount))
        else:
            ops.append(Op(op_id, "/Steps/two", {"op": op_id}))
    return ops


def http(url: str, body: dict[str, Any] | None, headers: dict[str, str],
         timeout: float = 30.0) -> tuple[int, Any, dict[str, str]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                 headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None, {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, None, {}
    except (urllib.error.URLError, ConnectionError, OSError, TimeoutError, ValueError):
        return 0, None, {}  # the ingress died under us, or timed out: not acknowledged
