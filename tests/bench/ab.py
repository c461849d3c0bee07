"""Alternating A/B runs of two (or more) checkouts of Reprise on one broker and one service process.

A full ``make bench`` starts a fresh broker per engine, and a shared VM drifts ±15-30% between
minutes: a change below that is invisible in its throughput. Here the broker's JIT stays warm, the
checkouts alternate (A B, B A, ...) on fresh namespaces, and each row reports what drifts less:
the engine's CPU and voluntary context switches per request. Figures only, nothing asserted.

    python tests/bench/ab.py new=.,old=/tmp/wt_old 3 counter_1000_keys:64,greet:64

Each checkout needs its own ``.venv`` (a symlink to this one will do) and runs its apply path compiled
only if built there (``make native`` in the checkout; ``deploy/native.py``); ``dir:VAR~value;VAR~value``
runs a checkout with extra environment (``REPRISE_GC_GEN0_THRESHOLD~0``). ``AB_PYSPY=DIR`` records a
py-spy profile of the engine (collapsed stacks, GIL holders only) per side, round and row into DIR;
compiled modules do not show in py-spy's stacks (``REPRISE_NATIVE=0`` for a profile of everything).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from tests.bench.broker import broker_pid, fresh_broker, stop_broker  # noqa: E402
from tests.bench.loadgen import DEFERRED, WORKLOADS, greet, run_load  # noqa: E402
from tests.bench.run import INGRESS, cpu_seconds, register, start_service, wait_http  # noqa: E402


def voluntary_switches(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def profile(pid: int, label: str, duration: float) -> subprocess.Popen | None:
    """py-spy on the engine for the row's measured window (after its 2 s warm-up), if AB_PYSPY names a
    directory: GIL holders only, non-blocking (the engine is not paused to sample)."""
    out = os.environ.get("AB_PYSPY")
    if not out:
        return None
    Path(out).mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).parent / "py-spy"
    command = (f"sleep 2; exec {spy} record --pid {pid} --gil --nonblocking --format raw --duration {int(duration)}"
               f" --output {out}/{label}.txt")
    return subprocess.Popen(["sh", "-c", command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_side(name: str, spec: str, bootstrap: str, service_pid: int, rows: list[tuple[str, int]], round_: int,
             warm: float, duration: float) -> None:
    directory, _, extra = spec.partition(":")
    env = {**os.environ, **dict(kv.split("~", 1) for kv in extra.split(";") if kv)}
    directory = str(Path(directory).resolve())
    proc = subprocess.Popen([f"{directory}/.venv/bin/python", "-m", "reprise", "dev", "--kafka", bootstrap,
                             "--namespace", f"ab{name}{round_}{int(time.time())}"], cwd=directory, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(ROOT / ".reprise" / f"ab-{name}.log", "w"),
                            start_new_session=True)
    try:
        wait_http(INGRESS + "/restate/health")
        register()
        asyncio.run(run_load(INGRESS, greet, 16, 0, warm))
        requests = {n: req for n, req, _ in WORKLOADS}
        pids = {"engine": proc.pid, "kafka": broker_pid(), "service": service_pid}
        for workload, c in rows:
            before = {k: cpu_seconds(p) for k, p in pids.items()}
            switches = {k: voluntary_switches(p) for k, p in pids.items()}
            spy = profile(proc.pid, f"{name}-{round_}-{workload}-{c}", duration)
            res = asyncio.run(run_load(INGRESS, requests[workload], c, 2, duration))
            if spy is not None:
                spy.wait(30)
            n = max(1, res.ok_total)
            per = {k: (cpu_seconds(p) - before[k]) / n * 1000 for k, p in pids.items()}
            switched = {k: (voluntary_switches(p) - switches[k]) / n for k, p in pids.items()}
            print(f"round {round_} {name:8} {workload:18} C={c:<3} {res.rps:7.1f} req/s  p50 {res.pct(50):6.1f} ms  "
                  f"CPU ms/req engine {per['engine']:.3f} kafka {per['kafka']:.3f} service {per['service']:.3f}  "
                  f"switches/req engine {switched['engine']:.1f} kafka {switched['kafka']:.1f}", flush=True)
            if workload in DEFERRED:
                time.sleep(8)  # let the backlog drain before the next row
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def main() -> None:
    sides = dict(s.split("=", 1) for s in sys.argv[1].split(","))
    rounds = int(sys.argv[2])
    rows = [(w, int(c)) for w, c in (r.split(":") for r in sys.argv[3].split(","))]
    warm, duration = float(os.environ.get("AB_WARM", 10)), float(os.environ.get("AB_DURATION", 15))
    bootstrap = fresh_broker()
    service = start_service()
    try:
        for r in range(rounds):
            for name in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
                run_side(name, sides[name], bootstrap, service.pid, rows, r, warm, duration)
    finally:
        os.killpg(service.pid, signal.SIGKILL)
        stop_broker()


if __name__ == "__main__":
    main()
