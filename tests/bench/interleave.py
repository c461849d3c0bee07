"""Restate and Reprise measured in alternating slices of each row, so both see the same machine.

A shared VM's speed drifts by a fifth within seconds, with nothing else running: a fixed pure-Python
loop ran 1,177 to 1,783 times per CPU-second across two idle minutes (docs/benchmarks.md, "Machine
drift"). A row
measured for one engine and then, minutes later, for the other compares two machines as much as two
engines: the same build ran 277 and then 404 req/s, two minutes apart.

So both engines start once, each on fresh data and on its own ports (Reprise on 8180/9170), and the
one service process is registered with both. Each row is then measured in ``slices`` windows per
engine, in the order A B, B A, A B, ...: only one engine is under load at a time, the other idles
(its CPU meanwhile is reported). Before the next window, the one-way sends an engine accepted are
drained from the service, so no window inherits another's backlog. An engine's row is its windows
merged.
"""

from __future__ import annotations

import os
import signal

from tests.bench.loadgen import DEFERRED, Result
from tests.bench.run import Engine, measure_window, per_request_ms, register, report_row, start_service, warm_up


def _cores(engine: str, used: dict[str, float]) -> dict[str, float]:
    """Cores busy during an engine's windows: its processes, the service, the load generator, and
    (``idle_other``) the processes of the engines idling meanwhile."""
    own = f"{engine}:"
    cores = {k.removeprefix(own): v for k, v in used.items() if k.startswith(own)}
    cores.update(service=used["service"], loadgen=used["loadgen"],
                 idle_other=sum(v for k, v in used.items() if ":" in k and not k.startswith(own)))
    return cores


def run_interleaved(engines: list[Engine], workloads: list, warmup: float, duration: float,
                    engine_warmup: float, slices: int) -> dict[str, dict]:
    """Every row for every engine, in alternating windows; the same shape as ``run_engine``'s result,
    per engine name. ``duration`` is each engine's measured time per row, split over its windows."""
    service = start_service()
    out: dict[str, dict] = {e.name: {"results": {}, "executed": {}} for e in engines}
    started: list[Engine] = []
    try:
        for e in engines:
            e.start()
            started.append(e)
            register(e.admin)
        for e in engines:
            warm_up(e, engine_warmup)
        pids = {f"{e.name}:{k}": p for e in engines for k, p in e.pids.items()}
        pids.update(service=service.pid, loadgen=os.getpid())
        for name, request, concurrencies in workloads:
            for c in concurrencies:
                deferred = DEFERRED.get(name)
                parts: dict[str, list] = {e.name: [] for e in engines}
                for i in range(slices):
                    for e in (engines if i % 2 == 0 else engines[::-1]):
                        parts[e.name].append(measure_window(e, request, c, warmup, duration / slices, pids,
                                                            deferred))
                for e in engines:
                    res = Result.merged([r for r, _, _, _ in parts[e.name]])
                    window = slices * (warmup + duration / slices)
                    used = {k: sum(u[k] for _, u, _, _ in parts[e.name]) / window for k in pids}
                    cpu_seconds = {k: sum(u[k] for _, u, _, _ in parts[e.name]) for k in pids}
                    out[e.name]["results"][(name, c)] = (res, _cores(e.name, used),
                                                         _cores(e.name, per_request_ms(cpu_seconds, res)))
                    report_row(e.name, name, c, res)
                    print(f"  {e.name:8} {name:18} C={c:<3} windows: "
                          + " / ".join(f"{r.rps:.0f}" for r, _, _, _ in parts[e.name]) + " req/s", flush=True)
                    if deferred:
                        waited = sum(w for _, _, _, w in parts[e.name])
                        sends = res.ok_total * deferred[1]
                        out[e.name]["executed"][(name, c)] = (sends / (window + waited), waited)
                        print(f"  {e.name:8} {name:18} C={c:<3} accepted {sends}, all executed "
                              f"{waited:.1f} s after their windows: {sends / (window + waited):.1f} "
                              "executed/s", flush=True)
    finally:
        try:
            for e in started:
                e.stop()
        finally:
            os.killpg(service.pid, signal.SIGKILL)
    return out
