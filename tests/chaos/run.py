"""Chaos: thousands of invocations while processors, ingresses and the broker are killed at random.

    python tests/chaos/run.py [--invocations 10000] [--processors 3] [--ingresses 2] [--seed 1]

Starts its own single-node Kafka (port 19392; or uses ``--kafka``, whose broker it never kills),
``--processors`` ``reprise processor`` and ``--ingresses`` ``reprise ingress`` processes and the
ledger service (tests/chaos/ledgerapp.py), then sends a mix of invocations from client threads,
each with an idempotency key and retried until acknowledged, as a careful client would. Every
acknowledgement is recorded: the invocation id of each 202, the id and result of each 200.
Meanwhile a chaos thread SIGKILLs a random processor or ingress every few seconds (and starts it
again), and SIGKILLs and restarts the broker (its own only).

Then it checks, and exits non-zero if any check fails:
1. every acknowledged invocation exists and completed: each is looked up by the invocation id its
   acknowledgement carried (``/restate/invocation/{id}/attach``), never by sending it again (a send
   again with its key would create an invocation the engine lost); a 200's result must be the one
   the engine kept;
2. no journaled effect happened twice: each token a journal holds is in the ledger exactly once
   (executions whose result never reached the log are counted, and allowed: that is at-least-once
   for a step, exactly once for its journaled result);
3. every account's balance (object state) equals the sum of its journaled ledger deposits and of
   the deposits the clients made.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from reprise.deploy.kafka.local import LocalKafka  # noqa: E402
from reprise.engine.ids import idempotent_invocation_id  # noqa: E402
from tests.chaos.ops import Op, http, make_ops  # noqa: E402
from tests.chaos.verify import check_effects, verify_by_id  # noqa: E402
from tests.harness import Engine, Service  # noqa: E402


@dataclass
class Figures:
    kills: Counter[str] = field(default_factory=Counter)
    broker_restarts: int = 0
    failed_restarts: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    acked: int = 0


@dataclass
class Sabotage:
    """Deliberate faults that prove the checks can fail (tests/integration/test_chaos.py uses them)."""

    lose_acknowledged: int = 0  # this many sends get a 202 that was never produced (a lossy ingress)
    duplicate_effects: int = 0  # the service writes this many journaled ledger lines twice


class Cluster:
    """The processes under chaos. With ``kafka`` given, the broker is someone else's: never killed."""

    def __init__(self, work: Path, processors: int, ingresses: int, partitions: int, kafka: str | None = None,
                 namespace: str = "chaos", service_env: dict[str, str] | None = None,
                 broker_port: int = 19392) -> None:
        self.kafka = None if kafka else LocalKafka(home=work / "broker", port=broker_port,
                                                   controller_port=broker_port + 1, heap="384m")
        bootstrap = kafka or self.kafka.start()
        env = {"REPRISE_SNAPSHOT_DIR": str(work / "snapshots"), "REPRISE_SNAPSHOT_INTERVAL_S": "5",
               "REPRISE_PRODUCE_TIMEOUT_MS": "5000"}
        self.ingresses = [Engine(bootstrap, namespace, work / f"ingress{i}", partitions, env, role="ingress")
                          for i in range(ingresses)]
        self.processors = [Engine(bootstrap, namespace, work / f"processor{i}", partitions,
                                  {**env, "REPRISE_INSTANCE_ID": f"processor-{i}"}, role="processor")
                           for i in range(processors)]
        self.service = Service(work / "effects", work / "service.log", app="tests.chaos.ledgerapp:app",
                               env={"REPRISE_CHAOS_LEDGER": str(work / "ledger"), **(service_env or {})})
        self.ledger = work / "ledger"
        self.lock = threading.Lock()

    def start(self) -> None:
        self.service.start()
        for p in self.ingresses + self.processors:
            p.start(120)
        deadline = time.monotonic() + 120
        while True:  # a loaded machine may answer 504 while the deployment is being discovered
            try:
                self.ingresses[0].register(self.service.uri)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        for url in self.urls():  # every ingress knows the services before the first client sends
            while http(url + "/Account/a0/balance", {}, {})[0] != 200:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} does not know the registered services")
                time.sleep(0.5)

    def urls(self) -> list[str]:
        return [i.ingress for i in self.ingresses]

    def stop(self) -> None:
        for p in self.ingresses + self.processors:
            p.kill()
        self.service.kill()
        if self.kafka is not None:
            self.kafka.stop()


def lost_ack(op: Op) -> str:
    """Sabotage: the id a lossy ingress would acknowledge this send with, without producing anything."""
    _, service, key, handler, _send = op.path.split("/")
    return str(idempotent_invocation_id(service, key, handler, op.id))


def client(cluster: Cluster, ops: list[Op], figures: Figures, rng: random.Random, lose: set[str],
           pace: float = 0.0) -> None:
    for op in ops:
        time.sleep(pace)
        if op.id in lose:
            op.invocation_id = lost_ack(op)
            with cluster.lock:
                figures.acked += 1
            continue
        while True:
            op.attempts += 1
            status, out, headers = http(rng.choice(cluster.urls()) + op.path, op.body, {"idempotency-key": op.id})
            if status in (200, 202):
                op.invocation_id = out["invocationId"] if status == 202 else headers.get("x-restate-id")
                op.acked_result = out if status == 200 else None
                with cluster.lock:
                    figures.acked += 1
                break
            with cluster.lock:
                figures.retries[str(status or "connection")] += 1
            # 404: a just-restarted ingress that has not read the registered services yet
            if status not in (0, 404, 429, 500, 502, 503, 504):
                raise SystemExit(f"op {op.id}: unexpected answer {status} {out}")
            time.sleep(0.2)


def chaos(cluster: Cluster, figures: Figures, stop: threading.Event, rng: random.Random, every: float,
          broker_every: float) -> None:
    next_broker = time.monotonic() + broker_every
    while not stop.wait(rng.uniform(every / 2, every * 1.5)):
        if cluster.kafka is not None and broker_every > 0 and time.monotonic() > next_broker:
            pid = cluster.kafka.pid()
            if pid:
                os.kill(pid, signal.SIGKILL)
            time.sleep(rng.uniform(0.5, 2.0))
            cluster.kafka.start()
            figures.broker_restarts += 1
            next_broker = time.monotonic() + broker_every
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--invocations", type=int, default=10_000)
    ap.add_argument("--processors", type=int, default=3)
    ap.add_argument("--ingresses", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--accounts", type=int, default=100)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--chaos-every", type=float, default=4.0, help="mean seconds between kills (0: no chaos)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pace", type=float, default=0.0, help="seconds each client waits between invocations")
    ap.add_argument("--work", help="directory for logs and state (default: a new temporary one)")
    ap.add_argument("--broker-every", type=float, help="seconds between broker kills (default: 4 × --chaos-every; "
                                                       "0: never)")
    ap.add_argument("--broker-port", type=int, default=19392, help="the port of the broker it starts (and the next)")
    ap.add_argument("--kafka", help="use this broker (never killed) instead of starting one")
    ap.add_argument("--namespace", default="chaos")
    ap.add_argument("--sabotage-lose-acknowledged", type=int, default=0,
                    help="prove the check: acknowledge this many sends without sending them")
    ap.add_argument("--sabotage-duplicate-effects", type=int, default=0,
                    help="prove the check: the service writes this many journaled effects twice")
    return ap.parse_args(argv)


def run_chaos(args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    """The whole run; the failures found and the figures."""
    rng = random.Random(args.seed)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="reprise-chaos-"))
    print(f"chaos: {args.invocations} invocations, {args.processors} processors, {args.ingresses} ingresses, "
          f"work dir {work}", flush=True)
    broker_every = 4 * args.chaos_every if args.broker_every is None else args.broker_every
    sabotage = Sabotage(args.sabotage_lose_acknowledged, args.sabotage_duplicate_effects)
    cluster = Cluster(work, args.processors, args.ingresses, args.partitions, args.kafka, args.namespace,
                      {"REPRISE_CHAOS_DUPLICATE_EFFECTS": str(sabotage.duplicate_effects)}, args.broker_port)
    figures = Figures()
    try:
        cluster.start()
        ops = make_ops(args.invocations, args.accounts, rng)
        lose = set([op.id for op in ops if op.is_send][:sabotage.lose_acknowledged])
        stop = threading.Event()
        monkey = threading.Thread(target=chaos, args=(cluster, figures, stop, random.Random(args.seed + 1),
                                                      args.chaos_every, broker_every), daemon=True)
        started = time.monotonic()
        if args.chaos_every > 0:
            monkey.start()
        threads = [threading.Thread(target=client, args=(cluster, ops[i::args.clients], figures,
                                                         random.Random(args.seed + 10 + i), lose, args.pace),
                                    daemon=True)
                   for i in range(args.clients)]
        for t in threads:
            t.start()
        last = 0
        while any(t.is_alive() for t in threads):
            time.sleep(1 if args.invocations < 1000 else 5)
            print(f"  {time.monotonic() - started:6.0f} s  acknowledged {figures.acked}/{len(ops)} "
                  f"(+{figures.acked - last})  kills {dict(figures.kills)}  broker restarts "
                  f"{figures.broker_restarts}", flush=True)
            last = figures.acked
        elapsed = time.monotonic() - started
        stop.set()
        if monkey.is_alive():
            monkey.join(180)
        failures = verify_by_id(cluster.urls()[0], ops)
        found, counts = check_effects(cluster.urls()[0], cluster.ledger, ops, args.accounts)
        failures += found
    finally:
        cluster.stop()
    counts = {"acknowledged": f"{figures.acked} ({sum(op.is_send for op in ops)} × 202, "
                              f"{sum(not op.is_send for op in ops)} × 200)",
              "wall time under chaos": f"{elapsed:.1f} s ({len(ops) / elapsed:.0f} acknowledged invocations/s)",
              "kills": dict(figures.kills), "broker SIGKILL+restart": figures.broker_restarts,
              "restarts that failed": figures.failed_restarts,
              "client retries": dict(figures.retries), **counts, "failures": len(failures)}
    return failures, counts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    failures, counts = run_chaos(args)
    print(f"\nchaos figures ({args.invocations} invocations, seed {args.seed})")
    for name, value in counts.items():
        print(f"  {name:<30} {value}")
    for f in failures[:20]:
        print(f"    {f}")
    print("CHAOS " + ("FAILED" if failures else "PASSED"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
