"""The chaos run's checks, once the chaos stopped: by invocation id, against the ledger, against state.

Nothing here sends an invocation again: a lost acknowledged invocation must show as lost, not be
created anew by the check (which is what a second send with the same idempotency key would do).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.chaos.ops import Op, http

RETRYABLE = (0, 429, 500, 502, 503, 504)


def verify_one(ingress: str, op: Op, deadline_s: float = 300.0) -> str | None:
    """Attach to the invocation the acknowledgement named; keep its result in ``op.result``."""
    if op.invocation_id is None:
        return f"{op.id}: acknowledged without an invocation id"
    deadline = time.monotonic() + deadline_s
    while True:
        status, out, _ = http(f"{ingress}/restate/invocation/{op.invocation_id}/attach", None, {}, timeout=60)
        if status == 200:
            op.result = out
            if not op.is_send and out != op.acked_result:
                return f"{op.id}: acknowledged with {op.acked_result!r}, the engine keeps {out!r}"
            return None
        if status == 404:
            return f"{op.id}: acknowledged ({'202' if op.is_send else '200'}) as {op.invocation_id}, " \
                   f"unknown to the engine: lost"
        if status not in RETRYABLE or time.monotonic() > deadline:
            return f"{op.id}: {op.invocation_id} did not complete ({status} {out!r})"
        time.sleep(0.5)


def verify_by_id(ingress: str, ops: list[Op], workers: int = 8) -> list[str]:
    """Every acknowledged invocation exists and completed, looked up by its id."""
    with ThreadPoolExecutor(workers) as pool:
        return [f for f in pool.map(lambda op: verify_one(ingress, op), ops) if f is not None]


def check_effects(ingress: str, ledger_dir: Path, ops: list[Op], accounts: int) -> tuple[list[str], dict[str, int]]:
    """Each journaled effect once in the ledger; each balance = its journaled deposits = what clients sent."""
    failures: list[str] = []
    ledger: dict[str, list[tuple[str, str, int]]] = defaultdict(list)  # token -> [(kind, op, amount)]
    executions: Counter[tuple[str, str]] = Counter()
    for f in ledger_dir.glob("ledger-*"):
        for line in f.read_text().splitlines():
            kind, op, amount, token = line.split()
            ledger[token].append((kind, op, int(amount)))
            executions[(kind, op)] += 1
    journaled_deposits: dict[str, int] = defaultdict(int)
    expected: dict[str, int] = defaultdict(int)
    journaled = 0
    for op in ops:
        if op.account is not None:
            expected[op.account] += op.amount  # every op was acknowledged: each deposit must count
        if op.result is None:
            continue  # reported by verify_by_id
        tokens = op.result["tokens"] if "tokens" in op.result else [op.result["token"]]
        for token in tokens:
            journaled += 1
            if len(ledger.get(token, [])) != 1 or ledger[token][0][1] != op.id:
                failures.append(f"{op.id}: journaled token {token} is in the ledger {len(ledger.get(token, []))} times")
        if op.account is not None:
            journaled_deposits[op.account] += ledger[tokens[0]][0][2] if ledger.get(tokens[0]) else 0
    for i in range(accounts):
        account = f"a{i}"
        status, balance, _ = http(f"{ingress}/Account/{account}/balance", {}, {})
        if status != 200 or balance != expected[account] or journaled_deposits[account] != expected[account]:
            failures.append(f"{account}: balance {balance} ({status}), ledger {journaled_deposits[account]}, "
                            f"clients {expected[account]}")
    extra = sum(executions.values()) - journaled
    return failures, {"journaled effects": journaled, "step executions": sum(executions.values()),
                      "re-executions never journaled": extra}
