"""Does a SQL introspection query slow the engine it reads? Load with and without queries, alternating.

Starts ``reprise dev`` (on an existing broker, a fresh namespace) and the benchmarks' service
(``benchapp`` under hypercorn), registers it, and fills the partitions with a warm-up of the
workload. Then, in rounds, runs the same closed-loop load (``loadgen.py``) twice: once alone
(``quiet``) and once beside a loop of introspection queries sent one after another to the same
engine's ``POST /query`` (``queries``), in the order quiet, queries, queries, quiet, ... so the
machine's drift falls on both sides alike. Prints req/s and p50/p99 latency of each window, the
queries answered (and their rows) meanwhile, and the median and spread of each side. Each round
also sends the queries once on the idle engine (no load, a second after a window) and prints how
long each took (``idle``). Figures only: nothing is asserted.

    python tests/bench/query_load.py [--kafka 127.0.0.1:9092] [--port-base 21300] [--rounds 4]
                                     [--seconds 8] [--workload counter_1000_keys] [--concurrency 16]

Completed invocations are kept for ``REPRISE_COMPLETED_RETENTION_S`` (60 s here, unless set), so
the tables the queries scan stay about one minute of the load deep instead of growing all run.
Other ``REPRISE_*`` variables reach the engine unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from tests.bench.loadgen import WORKLOADS, Result, run_load  # noqa: E402
from tests.bench.run import wait_http  # noqa: E402

# What an operator asks while the engine runs: every invocation, journals, one key's state.
QUERIES = [
    "SELECT * FROM sys_invocation",
    "SELECT id, index, entry_type, name, completed FROM sys_journal",
    "SELECT key, value_utf8 FROM state WHERE service_name = 'BenchCounter' AND service_key = 'k7'",
    "SELECT status, count(*) AS n FROM sys_invocation GROUP BY status",
]


def query_loop(admin: str, stopped: Any, counts: Any) -> None:
    """Sends QUERIES round-robin to ``admin``'s ``/query``, one at a time, until ``stopped`` is set;
    ``counts`` gets (answered, refused, rows, milliseconds spent). A process of its own, so parsing
    the answers takes no interpreter time from the load generator."""
    i = 0
    while not stopped.is_set():
        sql = QUERIES[i % len(QUERIES)]
        i += 1
        req = urllib.request.Request(admin + "/query", data=json.dumps({"query": sql}).encode(),
                                     headers={"content-type": "application/json", "accept": "application/json"})
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                counts[2] += len(json.loads(resp.read())["rows"])
            counts[0] += 1
        except OSError:  # urllib's HTTPError too: a refused or failed query
            counts[1] += 1
            time.sleep(0.05)
        counts[3] += int((time.monotonic() - t0) * 1000)


def idle_pass(admin: str) -> list[tuple[float, int]]:
    """Each of QUERIES once on an idle engine: (seconds, rows) each; rows -1 for a refused query."""
    took = []
    for sql in QUERIES:
        req = urllib.request.Request(admin + "/query", data=json.dumps({"query": sql}).encode(),
                                     headers={"content-type": "application/json", "accept": "application/json"})
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                rows = len(json.loads(resp.read())["rows"])
        except OSError:
            rows = -1
        took.append((time.monotonic() - t0, rows))
    return took


class QueryLoop:
    """``query_loop`` in a process of its own, started and stopped around one window."""

    def __init__(self, admin: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.stopped, self.counts = ctx.Event(), ctx.Array("q", 4)
        self.proc = ctx.Process(target=query_loop, args=(admin, self.stopped, self.counts), daemon=True)

    def start(self) -> None:
        self.proc.start()
        time.sleep(0.5)  # the interpreter starting is not part of the window

    def stop(self) -> None:
        self.stopped.set()
        self.proc.join(60)
        self.answered, self.refused, self.rows, ms = self.counts[:]
        self.seconds = ms / 1000


def start(args: argparse.Namespace, home: str, namespace: str) -> tuple[subprocess.Popen, subprocess.Popen, str, str]:
    ingress, admin, service = (f"http://127.0.0.1:{args.port_base + n}" for n in (1, 2, 10))
    env = {"REPRISE_COMPLETED_RETENTION_S": "60", **os.environ}
    engine = subprocess.Popen([sys.executable, "-m", "reprise", "dev", "--kafka", args.kafka, "--namespace", namespace,
                               "--home", home, "--ingress-port", str(args.port_base + 1),
                               "--admin-port", str(args.port_base + 2)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(Path(home) / "engine.log", "w"),
                              start_new_session=True)
    config = str(Path(__file__).with_name("hypercorn.toml"))
    app = subprocess.Popen([sys.executable, "-m", "hypercorn", "tests.bench.benchapp:app", "--bind",
                            service.removeprefix("http://"), "--config", config],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_http(ingress + "/restate/health")
    wait_http(service + "/_bench/greets")
    req = urllib.request.Request(admin + "/deployments", data=json.dumps({"uri": service, "force": True}).encode(),
                                 headers={"content-type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=60).read()
    time.sleep(1.0)
    return engine, app, ingress, admin


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def drop_topics(bootstrap: str, namespace: str) -> None:
    """The run's topics: a shared broker should not keep every run's partitions."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [t for t in admin.list_topics(timeout=30).topics if t.startswith(namespace + ".")]
    for fut in (admin.delete_topics(topics, operation_timeout=30) if topics else {}).values():
        try:
            fut.result()
        except Exception as e:  # noqa: BLE001 - a topic already gone
            print(f"could not delete a topic: {e}")


def line(side: str, round_: int, res: Result, loop: QueryLoop | None) -> str:
    extra = ""
    if loop is not None:
        mean = loop.seconds / max(1, loop.answered + loop.refused)
        extra = f"  queries {loop.answered} ({loop.refused} refused, {loop.rows} rows, {mean * 1000:.0f} ms each)"
    return (f"round {round_} {side:8} {res.rps:7.1f} req/s  p50 {res.pct(50):6.1f} ms  p99 {res.pct(99):6.1f} ms"
            f"  errors {res.errors}{extra}")


def summary(side: str, results: list[Result]) -> str:
    rps = [r.rps for r in results]
    p50 = [r.pct(50) for r in results]
    p99 = [r.pct(99) for r in results]
    return (f"{side:8} req/s median {statistics.median(rps):.1f} ({min(rps):.1f}-{max(rps):.1f})  "
            f"p50 median {statistics.median(p50):.1f} ms ({min(p50):.1f}-{max(p50):.1f})  "
            f"p99 median {statistics.median(p99):.1f} ms ({min(p99):.1f}-{max(p99):.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kafka", default="127.0.0.1:9092")
    parser.add_argument("--port-base", type=int, default=21300,
                        help="ingress on +1, admin on +2, the service on +10")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per window")
    parser.add_argument("--warmup", type=float, default=30.0, help="unmeasured load first (fills the tables)")
    parser.add_argument("--workload", default="counter_1000_keys", choices=[w[0] for w in WORKLOADS])
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    request = {name: req for name, req, _ in WORKLOADS}[args.workload]
    # a namespace tests/conftest.py knows as someone's (a test's clean-up leaves its topics alone)
    namespace = f"tqload{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="query-load-") as home:
        engine, app = None, None
        try:
            engine, app, ingress, admin = start(args, home, namespace)
            warm = asyncio.run(run_load(ingress, request, args.concurrency, 0, args.warmup))
            print(f"warm-up: {args.workload} C={args.concurrency} for {args.warmup:.0f} s, {warm.rps:.0f} req/s",
                  flush=True)
            sides: dict[str, list[Result]] = {"quiet": [], "queries": []}
            idle: list[float] = []
            for round_ in range(args.rounds):
                time.sleep(1.0)  # the last window's tail applied
                took = idle_pass(admin)
                idle.append(sum(s for s, _ in took))
                print(f"round {round_} idle     mix {idle[-1]:.2f} s: " + ", ".join(
                    f"{s:.2f} s ({n} rows)" for s, n in took), flush=True)
                order = ["quiet", "queries"] if round_ % 2 == 0 else ["queries", "quiet"]
                for side in order:
                    loop = QueryLoop(admin) if side == "queries" else None
                    if loop is not None:
                        loop.start()
                    res = asyncio.run(run_load(ingress, request, args.concurrency, 1.0, args.seconds))
                    if loop is not None:
                        loop.stop()
                    sides[side].append(res)
                    print(line(side, round_, res, loop), flush=True)
            for side, results in sides.items():
                print(summary(side, results))
            print(f"idle     query mix median {statistics.median(idle):.2f} s ({min(idle):.2f}-{max(idle):.2f})")
            quiet = statistics.median(r.rps for r in sides["quiet"])
            print(f"QUERY-LOAD-RATIO {args.workload} C={args.concurrency} "
                  f"{statistics.median(r.rps for r in sides['queries']) / quiet:.2f}")
        finally:
            for proc in (engine, app):
                if proc is not None:
                    stop(proc)
            drop_topics(args.kafka, namespace)


if __name__ == "__main__":
    main()
