"""Chaos: thousands of invocations while processors, ingresses and the broker are killed at random.

    python tests/chaos/run.py [--invocations 10000] [--processors 3] [--ingresses 2] [--seed 1]

Starts its own single-node Kafka (port 19392), ``--processors`` ``reprise processor`` and
``--ingresses`` ``reprise ingress`` processes and the ledger service (tests/chaos/ledgerapp.py),
then sends a mix of invocations from client threads, each with an idempotency key and retried
until acknowledged, as a careful client would. Meanwhile a chaos thread SIGKILLs a random
processor or ingress every few seconds (and starts it again), and SIGKILLs and restarts the broker.

Then it checks, and exits non-zero if any check fails:
1. every invocation was acknowledged and completed with a result;
2. no journaled effect happened twice: each token a journal holds is in the ledger exactly once
   (executions whose result never reached the log are counted, and allowed: that is at-least-once
   for a step, exactly once for its journaled result);
3. every account's balance (object state) equals the sum of its journaled ledger deposits and of
   the deposits the clients made.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from deploy.kafka.local import LocalKafka  # noqa: E402
from tests.harness import Engine, Service  # noqa: E402


@dataclass
class Op:
    id: str
    path: str
    body: dict[str, Any]
    account: str | None = None
    amount: int = 0
    result: Any = None
    attempts: int = 0


@dataclass
class Figures:
    kills: Counter[str] = field(default_factory=Counter)
    broker_restarts: int = 0
    failed_restarts: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    acked: int = 0


def http(url: str, body: dict[str, Any] | None, headers: dict[str, str], timeout: float = 30.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                 headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, None
    except (urllib.error.URLError, ConnectionError, OSError, TimeoutError, ValueError):
        return 0, None  # the ingress died under us, or timed out: not acknowledged


class Cluster:
    def __init__(self, work: Path, processors: int, ingresses: int, partitions: int) -> None:
        self.kafka = LocalKafka(home=work / "broker", port=19392, controller_port=19393, heap="384m")
        self.kafka.start()
        env = {"REPRISE_SNAPSHOT_DIR": str(work / "snapshots"), "REPRISE_SNAPSHOT_INTERVAL_S": "5",
               "REPRISE_PRODUCE_TIMEOUT_MS": "5000"}
        ns = "chaos"
        self.ingresses = [Engine(self.kafka.bootstrap, ns, work / f"ingress{i}", partitions, env, role="ingress")
                          for i in range(ingresses)]
        self.processors = [Engine(self.kafka.bootstrap, ns, work / f"processor{i}", partitions,
                                  {**env, "REPRISE_INSTANCE_ID": f"processor-{i}"}, role="processor")
                           for i in range(processors)]
        self.service = Service(work / "effects", work / "service.log", app="tests.chaos.ledgerapp:app",
                               env={"REPRISE_CHAOS_LEDGER": str(work / "ledger")})
        self.ledger = work / "ledger"
        self.lock = threading.Lock()

    def start(self) -> None:
        self.service.start()
        for p in self.ingresses + self.processors:
            p.start(120)
        self.ingresses[0].register(self.service.uri)

    def urls(self) -> list[str]:
        return [i.ingress for i in self.ingresses]

    def stop(self) -> None:
        for p in self.ingresses + self.processors:
            p.kill()
        self.service.kill()
        self.kafka.stop()


def client(cluster: Cluster, ops: list[Op], figures: Figures, rng: random.Random) -> None:
    for op in ops:
        while True:
            op.attempts += 1
            status, out = http(rng.choice(cluster.urls()) + op.path, op.body, {"idempotency-key": op.id})
            if status in (200, 202):
                op.result = out
                with cluster.lock:
                    figures.acked += 1
                break
            with cluster.lock:
                figures.retries[str(status or "connection")] += 1
            if status not in (0, 429, 500, 502, 503, 504):
                raise SystemExit(f"op {op.id}: unexpected answer {status} {out}")
            time.sleep(0.2)


def chaos(cluster: Cluster, figures: Figures, stop: threading.Event, rng: random.Random, every: float) -> None:
    next_broker = time.monotonic() + 4 * every
    while not stop.wait(rng.uniform(every / 2, every * 1.5)):
        if time.monotonic() > next_broker:
            pid = cluster.kafka.pid()
            if pid:
                os.kill(pid, signal.SIGKILL)
            time.sleep(rng.uniform(0.5, 2.0))
            cluster.kafka.start()
            figures.broker_restarts += 1
            next_broker = time.monotonic() + 4 * every
            continue
        victim = rng.choice(cluster.processors + cluster.ingresses)
        victim.kill()
        figures.kills[victim.role] += 1
        time.sleep(rng.uniform(0.2, 2.0))
        try:
            victim.start(120)
        except TimeoutError as e:  # reported, and the run goes on: the checks decide
            figures.failed_restarts += 1
            print(f"chaos: a {victim.role} did not come back: {str(e)[-500:]}", flush=True)


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


def settle_sends(cluster: Cluster, ops: list[Op]) -> None:
    """A one-way send is acknowledged before it runs: fetch its result by calling with the same key."""
    for op in ops:
        if op.path.endswith("/send"):
            deadline = time.monotonic() + 300
            while True:
                status, out = http(cluster.urls()[0] + op.path.removesuffix("/send"), op.body,
                                   {"idempotency-key": op.id}, timeout=60)
                if status == 200:
                    op.result = out
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"send {op.id} never completed ({status})")
                time.sleep(0.5)


def check(cluster: Cluster, ops: list[Op], accounts: int) -> tuple[list[str], dict[str, int]]:
    failures: list[str] = []
    ledger: dict[str, list[tuple[str, str, int]]] = defaultdict(list)  # token -> [(kind, op, amount)]
    executions: Counter[tuple[str, str]] = Counter()
    for f in cluster.ledger.glob("ledger-*"):
        for line in f.read_text().splitlines():
            kind, op, amount, token = line.split()
            ledger[token].append((kind, op, int(amount)))
            executions[(kind, op)] += 1
    journaled_deposits: dict[str, int] = defaultdict(int)
    expected: dict[str, int] = defaultdict(int)
    journaled = 0
    for op in ops:
        if op.result is None:
            failures.append(f"{op.id}: no result")
            continue
        tokens = op.result["tokens"] if "tokens" in op.result else [op.result["token"]]
        for token in tokens:
            journaled += 1
            if len(ledger.get(token, [])) != 1 or ledger[token][0][1] != op.id:
                failures.append(f"{op.id}: journaled token {token} is in the ledger {len(ledger.get(token, []))} times")
        if op.account is not None:
            expected[op.account] += op.amount
            journaled_deposits[op.account] += ledger[tokens[0]][0][2] if ledger.get(tokens[0]) else 0
    for i in range(accounts):
        account = f"a{i}"
        status, balance = http(cluster.urls()[0] + f"/Account/{account}/balance", {}, {})
        if status != 200 or balance != expected[account] or journaled_deposits[account] != expected[account]:
            failures.append(f"{account}: balance {balance} ({status}), ledger {journaled_deposits[account]}, "
                            f"clients {expected[account]}")
    extra = sum(executions.values()) - journaled
    return failures, {"journaled effects": journaled, "step executions": sum(executions.values()),
                      "re-executions never journaled": extra}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--invocations", type=int, default=10_000)
    ap.add_argument("--processors", type=int, default=3)
    ap.add_argument("--ingresses", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--accounts", type=int, default=100)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--chaos-every", type=float, default=4.0, help="mean seconds between kills")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", help="directory for logs and state (default: a new temporary one)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="reprise-chaos-"))
    print(f"chaos: {args.invocations} invocations, {args.processors} processors, {args.ingresses} ingresses, "
          f"work dir {work}", flush=True)
    cluster = Cluster(work, args.processors, args.ingresses, args.partitions)
    figures = Figures()
    try:
        cluster.start()
        ops = make_ops(args.invocations, args.accounts, rng)
        stop = threading.Event()
        monkey = threading.Thread(target=chaos, args=(cluster, figures, stop, random.Random(args.seed + 1),
                                                      args.chaos_every), daemon=True)
        started = time.monotonic()
        monkey.start()
        threads = [threading.Thread(target=client, args=(cluster, ops[i::args.clients], figures,
                                                         random.Random(args.seed + 10 + i)), daemon=True)
                   for i in range(args.clients)]
        for t in threads:
            t.start()
        last = 0
        while any(t.is_alive() for t in threads):
            time.sleep(5)
            print(f"  {time.monotonic() - started:6.0f} s  acknowledged {figures.acked}/{len(ops)} "
                  f"(+{figures.acked - last})  kills {dict(figures.kills)}  broker restarts "
                  f"{figures.broker_restarts}", flush=True)
            last = figures.acked
        elapsed = time.monotonic() - started
        stop.set()
        monkey.join(180)
        settle_sends(cluster, ops)
        failures, counts = check(cluster, ops, args.accounts)
    finally:
        cluster.stop()
    print(f"\nchaos figures ({args.invocations} invocations, seed {args.seed})")
    print(f"  wall time under chaos     {elapsed:.1f} s ({len(ops) / elapsed:.0f} acknowledged invocations/s)")
    print(f"  kills                     {dict(figures.kills)}; broker SIGKILL+restart {figures.broker_restarts}; "
          f"restarts that failed {figures.failed_restarts}")
    print(f"  client retries            {dict(figures.retries)}")
    for name, value in counts.items():
        print(f"  {name:<25} {value}")
    print(f"  failures                  {len(failures)}")
    for f in failures[:20]:
        print(f"    {f}")
    print("CHAOS " + ("FAILED" if failures else "PASSED"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
