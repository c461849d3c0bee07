"""``make bench``: the same workloads against Restate 1.7.12 and Reprise, one after the other, in one run.

Both engines get a fresh data directory, the same restate-sdk service process (hypercorn, h2c) and
the same load generator. Restate and Reprise are measured in alternating windows of each row
(``interleave.py``: a shared VM's speed drifts within seconds); ``--sequential`` runs one engine's
rows and then the other's instead. The split and embedded Reprise columns run after them, one
engine at a time. Prints a table and one line per row:
``RATIO <workload> C=<n> <reprise_rps/restate_rps>``. Figures only: nothing here asserts a speed.

    python tests/bench/run.py [--duration 20] [--warmup 3] [--engines restate,reprise] [--only greet,...]
                              [--slices 4 | --sequential]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from tests.bench import restate_peer  # noqa: E402
from tests.bench.broker import broker_pid, fresh_broker, stop_broker  # noqa: E402
from tests.bench.loadgen import DEFERRED, WORKLOADS, Result, greet, run_load  # noqa: E402

INGRESS, ADMIN, SERVICE = "http://127.0.0.1:8080", "http://127.0.0.1:9070", "http://127.0.0.1:9080"
ADMIN_TOKEN = "bench-admin-token"  # the cluster roles need one (docs/security.md); dev engines ignore it
TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return None


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """User+system CPU of a process and (``tree``) every live descendant so far (hypercorn's workers
    are children)."""
    stats = {int(d.name): _stat(int(d.name)) for d in Path("/proc").iterdir() if d.name.isdigit()}
    children: dict[int, list[int]] = {}
    for p, fields in stats.items():
        if fields:
            children.setdefault(int(fields[1]), []).append(p)
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        fields = stats.get(p)
        if fields:
            total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS
        if tree:
            todo += children.get(p, [])
    return total


def wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def service_count(what: str) -> int:
    """How many times so far the service ran ``greet`` (``greets``), ``BenchCounter/add`` (``adds``) or
    was asked to run any handler (``attempts``); see benchapp. A service busy with a backlog can take
    seconds to answer this."""
    return int(urllib.request.urlopen(SERVICE + "/_bench/" + what, timeout=120).read())


def drain(start_count: int, accepted: int, counter: str = "greets", timeout: float = 300.0) -> float:
    """Seconds until the service's ``counter`` shows every accepted send executed (``nan`` if it never
    does)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if service_count(counter) - start_count >= accepted:
            return time.monotonic() - t0
        time.sleep(0.2)
    return float("nan")


def register(admin: str = ADMIN) -> None:
    req = urllib.request.Request(admin + "/deployments", data=json.dumps({"uri": SERVICE, "force": True}).encode(),
                                 headers={"content-type": "application/json",
                                          "authorization": f"Bearer {ADMIN_TOKEN}"}, method="POST")
    urllib.request.urlopen(req, timeout=60).read()
    time.sleep(1.0)


class Engine:
    name = ""
    embedded = False  # the service runs inside the engine: nothing to register
    pids: dict[str, int] = {}
    ingress, admin = INGRESS, ADMIN

    def start(self) -> None: ...
    def stop(self) -> None: ...


class Restate(Engine):
    name = "restate"

    def start(self) -> None:
        self.pids = {"restate-server": restate_peer.start()}

    def stop(self) -> None:
        restate_peer.stop()


class Reprise(Engine):
    name = "reprise"
    env: dict[str, str] = {}

    def __init__(self, ingress_port: int = 8080, admin_port: int = 9070) -> None:
        """Ports other than Restate's let both engines be up at once (``interleave.py``)."""
        self.ingress, self.admin = f"http://127.0.0.1:{ingress_port}", f"http://127.0.0.1:{admin_port}"
        self.ports = ["--ingress-port", str(ingress_port), "--admin-port", str(admin_port)]

    def start(self) -> None:
        py = sys.executable
        bootstrap = fresh_broker()
        self.proc = subprocess.Popen([py, "-m", "reprise", "dev", "--kafka", bootstrap, *self.ports,
                                      "--namespace", f"bench{int(time.time())}"], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, start_new_session=True,
                                     env={**os.environ, **self.env, **_extra_env()},
                                     stderr=open(ROOT / ".reprise" / f"bench-{self.name}.log", "w"))
        wait_http(self.ingress + "/restate/health")
        self.pids = {"reprise": self.proc.pid, "kafka": broker_pid()}

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        stop_broker()


def _extra_env() -> dict[str, str]:
    """REPRISE_* settings given to ``run.py`` reach the engines (for experiments)."""
    return {k: v for k, v in os.environ.items() if k.startswith("REPRISE_")}


class RepriseSplit(Reprise):
    """The roles in two processes, as a cluster runs them: ``reprise ingress`` and ``reprise processor``
    (two GILs on the machine's two cores, instead of one for everything)."""

    name = "reprise-split"

    def start(self) -> None:
        py = sys.executable
        ns = f"bench{int(time.time())}"
        common = ["--kafka", fresh_broker(), "--namespace", ns]
        self.procs = [subprocess.Popen([py, "-m", "reprise", role, *common, *extra], cwd=ROOT,
                                       env={**os.environ, "REPRISE_ADMIN_TOKEN": ADMIN_TOKEN},
                                       stdout=subprocess.DEVNULL, start_new_session=True,
                                       stderr=open(ROOT / ".reprise" / f"bench-{self.name}-{role}.log", "w"))
                      for role, extra in (("processor", ["--admin-port", "9071"]), ("ingress", []))]
        self.proc = self.procs[1]
        wait_http(INGRESS + "/restate/health")
        wait_http("http://127.0.0.1:9071/health")
        self.pids = {"ingress": self.procs[1].pid, "processor": self.procs[0].pid, "kafka": broker_pid()}

    def stop(self) -> None:
        for p in self.procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        stop_broker()


class RepriseEmbedded(Reprise):
    """The same service app called in-process (REPRISE_EMBEDDED_APP), no HTTP between engine and handler."""

    name = "reprise-embedded"
    embedded = True
    env = {"REPRISE_EMBEDDED_APP": "tests.bench.benchapp:app"}


def start_service(**env: str) -> subprocess.Popen:
    """The benchmarks' restate-sdk service (benchapp under hypercorn, h2c) on SERVICE's port, with
    ``env`` added to its environment (``BENCH_TRACE="1"``), once it answers: an engine registering it
    earlier fails its discovery (Restate answers 500)."""
    proc = subprocess.Popen([sys.executable, "-m", "hypercorn", "tests.bench.benchapp:app", "--bind",
                             "127.0.0.1:9080", "--config", str(Path(__file__).with_name("hypercorn.toml"))],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, **env})
    wait_http(SERVICE + "/_bench/greets")
    return proc


def warm_up(engine: Engine, seconds: float) -> None:
    """Unmeasured load once an engine has started: a broker just started spends its first minute
    compiling (the JVM's JIT). After 10 s of load it still took 0.56-0.67 of a core on sends at C=16,
    after 45 s 0.32: that start-up cost would be charged to whichever rows came first."""
    if seconds > 0:
        warm = asyncio.run(run_load(engine.ingress, greet, 16, 0, seconds))
        print(f"  {engine.name:8} warm-up: greet C=16 for {seconds:.0f} s, {warm.rps:.0f} req/s (not counted)",
              flush=True)


def measure_window(engine: Engine, request, c: int, warmup: float, duration: float, pids: dict[str, int],
                   deferred: tuple[str, int] | None) -> tuple[Result, dict[str, float], int, float]:
    """One window of a row for one engine: its result, each process's CPU seconds over it, and for
    one-way sends (``deferred``: the service's counter of them, and how many each request makes) how
    many the service ran by the window's end and how many seconds it then took to run the rest (an
    answer means the sends are accepted, durably logged, not executed)."""
    counter, per_request = deferred or ("", 0)
    start_count = service_count(counter) if deferred else 0
    before = {k: cpu_seconds(p, k != "loadgen") for k, p in pids.items()}
    res = asyncio.run(run_load(engine.ingress, request, c, warmup, duration))
    used = {k: cpu_seconds(p, k != "loadgen") - before[k] for k, p in pids.items()}
    if not deferred:
        return res, used, 0, 0.0
    in_window = service_count(counter) - start_count
    return res, used, in_window, drain(start_count, res.ok_total * per_request, counter)


def per_request_ms(used: dict[str, float], res: Result) -> dict[str, float]:
    """Each process's CPU milliseconds per request answered over the same windows (``used``: CPU seconds)."""
    return {k: v * 1000 / max(1, res.ok_total) for k, v in used.items()}


def report_row(engine: str, name: str, c: int, res: Result) -> None:
    print(f"  {engine:8} {name:18} C={c:<3} {res.rps:8.1f} req/s  p50 {res.pct(50):7.1f} ms  "
          f"p99 {res.pct(99):7.1f} ms  max {res.pct(100):7.1f} ms  errors {res.errors}  late {res.late}", flush=True)


def run_engine(engine: Engine, workloads: list, warmup: float, duration: float, engine_warmup: float) -> dict:
    service = start_service()
    results: dict = {}
    executed: dict = {}  # (workload, C) -> (sends executed per second, seconds to drain the backlog)
    try:
        engine.start()
        if not engine.embedded:
            register(engine.admin)
        pids = {**engine.pids, "service": service.pid, "loadgen": os.getpid()}
        warm_up(engine, engine_warmup)
        for name, request, concurrencies in workloads:
            for c in concurrencies:
                deferred = DEFERRED.get(name) if not engine.embedded else None
                start_attempts = service_count("attempts") if deferred else 0
                res, used, in_window, waited = measure_window(engine, request, c, warmup, duration, pids, deferred)
                results[(name, c)] = (res, {k: v / (warmup + duration) for k, v in used.items()},
                                      per_request_ms(used, res))
                report_row(engine.name, name, c, res)
                if deferred:
                    # How long until the service has run them all says how much of that rate was backlog.
                    sends = res.ok_total * deferred[1]
                    executed[(name, c)] = (sends / (warmup + duration + waited), waited)
                    attempts_each = (service_count("attempts") - start_attempts) / sends
                    print(f"  {engine.name:8} {name:18} C={c:<3} accepted {sends}, executed {in_window} "
                          f"by the window's end, the rest {waited:.1f} s later: {executed[(name, c)][0]:.1f} "
                          f"executed/s, {attempts_each:.3f} attempts each", flush=True)
    finally:
        try:
            engine.stop()
        finally:
            os.killpg(service.pid, signal.SIGKILL)
    return {"results": results, "executed": executed}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--engine-warmup", type=float, default=45.0, help="unmeasured load after each engine starts")
    ap.add_argument("--engines", default="restate,reprise,reprise-split,reprise-embedded")
    ap.add_argument("--only", default="")
    ap.add_argument("--sequential", action="store_true",
                    help="restate, then reprise, each row in one window (default: alternating windows, interleave.py)")
    ap.add_argument("--slices", type=int, default=4, help="windows per engine and row when alternating")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    workloads = [w for w in WORKLOADS if not only or w[0] in only]
    engines = {"restate": Restate, "reprise": Reprise, "reprise-embedded": RepriseEmbedded,
               "reprise-split": RepriseSplit}
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}")
    all_results, all_executed = {}, {}
    names = args.engines.split(",")
    if not args.sequential and {"restate", "reprise"} <= set(names):
        from tests.bench.interleave import run_interleaved

        print(f"\n== restate and reprise, alternating, {args.slices} windows each per row ==", flush=True)
        both = run_interleaved([Restate(), Reprise(8180, 9170)], workloads, args.warmup, args.duration,
                               args.engine_warmup, args.slices)
        for name, run in both.items():
            all_results[name], all_executed[name] = run["results"], run["executed"]
        names = [n for n in names if n not in both]
    for name in names:
        print(f"\n== {name} ==", flush=True)
        run = run_engine(engines[name](), workloads, args.warmup, args.duration, args.engine_warmup)
        all_results[name], all_executed[name] = run["results"], run["executed"]

    print(f"\n{'workload':18} {'C':>3} " + " ".join(f"{e + ' req/s':>14} {'p50':>7} {'p90':>7} {'p99':>7} {'err':>5}"
                                                 for e in all_results))
    for name, _, concurrencies in workloads:
        for c in concurrencies:
            row = f"{name:18} {c:>3} "
            for e in all_results:
                res = all_results[e][(name, c)][0]
                row += f"{res.rps:14.1f} {res.pct(50):7.1f} {res.pct(90):7.1f} {res.pct(99):7.1f} {res.errors:5d} "
            print(row)
    print("\nCPU (cores busy, average over each workload):")
    for e, results in all_results.items():
        for (name, c), (_res, cpu, _per) in results.items():
            print(f"  {e:8} {name:18} C={c:<3} " + "  ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
    print("\nCPU ms per answered request (warm-up and late answers included):")
    for e, results in all_results.items():
        for (name, c), (_res, _cpu, per) in results.items():
            print(f"  {e:8} {name:18} C={c:<3} " + "  ".join(f"{k} {v:.3f}" for k, v in per.items()))
    if any(all_executed.values()):
        print("\nOne-way sends executed (accepted over warm-up and window, divided by the time until the "
              "service had run them all):")
        for e, rows in all_executed.items():
            for (name, c), (rate, waited) in rows.items():
                print(f"  {e:16} {name} C={c:<3} {rate:8.1f} executed/s  (backlog drained {waited:.1f} s after)")
    if {"restate", "reprise"} <= set(all_results):
        print()
        for name, _, concurrencies in workloads:
            for c in concurrencies:
                ours, theirs = all_results["reprise"][(name, c)][0].rps, all_results["restate"][(name, c)][0].rps
                print(f"RATIO {name} C={c} {ours / theirs if theirs else float('nan'):.2f}")
    theirs_executed = all_executed.get("restate", {})
    for e, label in (("reprise", "EXECUTED-RATIO"), ("reprise-split", "SPLIT-EXECUTED-RATIO")):
        for key, (rate, _) in all_executed.get(e, {}).items():
            if key in theirs_executed and theirs_executed[key][0] == theirs_executed[key][0]:  # not nan
                print(f"{label} {key[0]} C={key[1]} {rate / theirs_executed[key][0]:.2f}")
    for variant, label in (("reprise-split", "SPLIT-RATIO"), ("reprise-embedded", "EMBEDDED-RATIO")):
        if {"restate", variant} <= set(all_results):
            print()
            for name, _, concurrencies in workloads:
                for c in concurrencies:
                    ours = all_results[variant][(name, c)][0].rps
                    theirs = all_results["restate"][(name, c)][0].rps
                    print(f"{label} {name} C={c} {ours / theirs if theirs else float('nan'):.2f}")


if __name__ == "__main__":
    main()
