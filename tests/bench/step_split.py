"""Where a ``ctx.run`` step's time goes, seen from the service, under each engine: figures only.

Runs three steps (``BenchGreeter/three_steps``) at one concurrency against each engine in turn, with
the bench service stamping every attempt (``BENCH_TRACE=1``, see benchapp), and splits each step:

- *resumed → closure ran*: the SDK hands the closure to its executor thread, and the thread gets the
  GIL from the event loop;
- *closure ran → proposal sent*: the result is encoded and the SDK hands the ProposeRunCompletion to
  hypercorn;
- *proposal sent → result received*: everything outside the app. hypercorn and the socket both ways,
  and the engine making the result durable and sending it back;
- *result received → handler resumed*: the SDK takes the notification and the handler's task runs.

The stamps all come from the service, so the split means the same for every engine. The engines run
one after the other, so the machine's drift (``drift.py``) is in the comparison: repeat them
(``reprise,restate,restate,reprise``) before reading much into one pair.

    python tests/bench/step_split.py [restate,reprise] [concurrency] [seconds]
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

import tests.bench.run as bench  # noqa: E402
from tests.bench.loadgen import WORKLOADS, run_load  # noqa: E402

THREE_STEPS = {name: request for name, request, _ in WORKLOADS}["three_run_steps"]
SPANS = ["resumed → closure ran", "closure ran → proposal sent", "proposal sent → result received",
         "result received → handler resumed"]


def take_traces() -> list[list[tuple[str, float]]]:
    return json.loads(urllib.request.urlopen(bench.SERVICE + "/_bench/trace", timeout=120).read())


def split(events: list[tuple[str, float]]) -> list[tuple[int, float]] | None:
    """One attempt's stamps as (span index, ms) for each of its steps; None unless it ran all three.

    The events run: resume, then per step run, tx (the proposal), rx (its result), resume; the last
    resume is the handler returning."""
    kinds = [k for k, _ in events]
    if kinds.count("run") != 3 or kinds.count("resume") != 4:
        return None
    out: list[tuple[int, float]] = []
    i = kinds.index("resume")
    for _ in range(3):
        resumed = events[i][1]
        r = kinds.index("run", i)
        tx = kinds.index("tx", r)
        rx = kinds.index("rx", tx)
        nxt = kinds.index("resume", rx)
        marks = [resumed, events[r][1], events[tx][1], events[rx][1], events[nxt][1]]
        out += [(n, (marks[n + 1] - marks[n]) * 1000) for n in range(4)]
        i = nxt
    return out


def pct(xs: list[float], p: float) -> float:
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def measure(engine: bench.Engine, concurrency: int, seconds: float) -> dict:
    service = bench.start_service(BENCH_TRACE="1")
    try:
        engine.start()
        bench.register(engine.admin)
        bench.warm_up(engine, 30)  # the broker's JIT, the engine's caches
        asyncio.run(run_load(engine.ingress, THREE_STEPS, concurrency, 0, 5))
        take_traces()
        pids = {**engine.pids, "service": service.pid}
        before = {k: bench.cpu_seconds(p) for k, p in pids.items()}
        res = asyncio.run(run_load(engine.ingress, THREE_STEPS, concurrency, 0, seconds))
        cpu = {k: (bench.cpu_seconds(p) - before[k]) / seconds for k, p in pids.items()}
        time.sleep(1.0)
        spans: list[list[float]] = [[] for _ in SPANS]
        for events in take_traces():
            for n, ms in split(events) or []:
                spans[n].append(ms)
        return {"rps": res.rps, "p50": res.pct(50), "cpu": cpu, "spans": [sorted(s) for s in spans]}
    finally:
        try:
            engine.stop()
        finally:
            os.killpg(service.pid, signal.SIGKILL)


def main() -> None:
    names = (sys.argv[1] if len(sys.argv) > 1 else "restate,reprise").split(",")
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 20.0
    engines = {"restate": bench.Restate, "reprise": bench.Reprise}
    results = {}
    for i, name in enumerate(names):  # a name given twice gets two columns, in run order
        results[f"{i + 1}. {name}"] = r = measure(engines[name](), concurrency, seconds)
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in r["cpu"].items())
        print(f"{name}: three steps C={concurrency}: {r['rps']:.0f} req/s, p50 {r['p50']:.1f} ms; "
              f"cores: {cpu}; {len(r['spans'][0])} steps traced", flush=True)
    print(f"\nper step, ms (p50 / p90 / mean), three steps at C={concurrency}")
    print(f"{'span':36}" + "".join(f"{n:>24}" for n in results))
    for i, span in enumerate(SPANS):
        cells = []
        for r in results.values():
            xs = r["spans"][i]
            mean = sum(xs) / len(xs) if xs else float("nan")
            cells.append(f"{pct(xs, 50):6.1f} / {pct(xs, 90):5.1f} / {mean:5.1f}")
        print(f"{span:36}" + "".join(f"{c:>24}" for c in cells))


if __name__ == "__main__":
    main()
