"""What an engine costs the service it drives: one-way sends at C=64, the service's CPU, context
switches and syscalls per send it executed. Figures only, nothing asserted.

Under one-way sends the restate-sdk service (one hypercorn worker, one Python thread) is the
bottleneck of both engines: it gets ~0.66 of a core either way, so the sends executed per second are
that over its CPU per send, and how an engine drives it (frames, wake-ups, streams) moves the row.

    python tests/bench/service_cost.py restate,reprise,reprise:REPRISE_STREAM_CALM_ATTEMPTS~0

Each spec is an engine (``restate`` or ``reprise``), optionally with ``VAR~value;...`` for Reprise
(``AB_DIR~/path`` runs another checkout). Runs alternate in the order given; repeat a spec to get
its spread (a shared VM drifts ±25% between minutes). Syscall counts come from ``perf stat``
(kernel tracepoints) when ``perf`` is installed; ``getpid`` counts asyncio's running-loop lookups in
Python 3.11, so it moves with the asyncio operations the service makes per send.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

import tests.bench.run as bench  # noqa: E402
from tests.bench.loadgen import WORKLOADS, greet, run_load  # noqa: E402

SEND = {name: request for name, request, _ in WORKLOADS}["one_way_send"]
EVENTS = ["syscalls:sys_enter_sendto", "syscalls:sys_enter_recvfrom", "syscalls:sys_enter_getpid",
          "context-switches", "task-clock"]
WINDOW_S = 10.0


def worker_pid(service: subprocess.Popen) -> int:
    """hypercorn's worker process (the one running the app), not its supervisor."""
    for _ in range(100):
        children = subprocess.run(["pgrep", "-P", str(service.pid)], capture_output=True, text=True).stdout.split()
        for pid in children:
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text():
                return int(pid)
        time.sleep(0.1)
    raise SystemExit("no hypercorn worker found")


def measure(spec: str, pid: int) -> None:
    """After 5 s of load: the worker's counters over WINDOW_S, per send executed around it."""
    time.sleep(5)
    t0 = time.monotonic()
    c0 = bench.service_count("greets")
    t0 = (t0 + time.monotonic()) / 2
    cpu0 = bench.cpu_seconds(pid, tree=False)
    if shutil.which("perf"):
        out = subprocess.run(["perf", "stat", "-x", ",", "-e", ",".join(EVENTS), "-p", str(pid), "sleep",
                              str(WINDOW_S)], capture_output=True, text=True).stderr
    else:
        time.sleep(WINDOW_S)
        out = ""
    cpu = bench.cpu_seconds(pid, tree=False) - cpu0
    t1 = time.monotonic()
    c1 = bench.service_count("greets")  # a busy service can take seconds to answer: time both calls
    t1 = (t1 + time.monotonic()) / 2
    rate = (c1 - c0) / (t1 - t0)
    sends = rate * WINDOW_S
    print(f"{spec}: {rate:.0f} sends/s executed; service CPU {cpu / WINDOW_S:.2f} cores, "
          f"{cpu / sends * 1000:.3f} ms a send", flush=True)
    for line in out.splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[0].replace(".", "", 1).isdigit():
            unit = " ms" if parts[2] == "task-clock" else ""
            print(f"    {parts[2]:30} {float(parts[0]) / sends:8.3f}{unit} a send", flush=True)


def run(spec: str) -> None:
    name, _, extra = spec.partition(":")
    for k in [k for k in os.environ if k.startswith("REPRISE_")]:
        del os.environ[k]
    os.environ.update(dict(kv.split("~", 1) for kv in extra.split(";") if kv))
    bench.ROOT = Path(os.environ.pop("AB_DIR", str(Path(__file__).resolve().parent.parent.parent)))
    service = bench.start_service()
    engine = {"restate": bench.Restate, "reprise": bench.Reprise}[name]()
    try:
        engine.start()
        bench.register()
        asyncio.run(run_load(bench.INGRESS, greet, 16, 0, 20))  # warm-up, not measured
        probe = threading.Thread(target=measure, args=(spec, worker_pid(service)))
        probe.start()
        asyncio.run(run_load(bench.INGRESS, SEND, 64, 0, 20))
        probe.join()
    finally:
        engine.stop()
        os.killpg(service.pid, signal.SIGKILL)


if __name__ == "__main__":
    for one in sys.argv[1].split(","):
        run(one)
