"""Recovery figures: how long from a processor's crash to serving again, and how fast a rebuild replays.

    python tests/bench/recovery.py [--records 200000] [--rounds 3] [--only restart|takeover|rebuild]

Uses the benchmarks' own broker, fresh (tests/bench/broker.py). Prints figures; asserts nothing about time.

1. **restart**: ``reprise dev`` with the bench service, SIGKILLed and started again at once: the
   time from the kill until a call (to a virtual object, so a partition's leader must be back) is
   answered again. Includes starting Python and the engine.
2. **takeover**: an ingress and two ``reprise processor`` members; one is SIGKILLed and stays dead:
   the time until calls on every partition are answered again (the group's session timeout, then
   the survivor's catch-up). Measured at the default session timeout (6 s, the smallest a default
   broker accepts) and at ``--fast-session-ms`` (2 s; the local broker allows down to 1 s). Then the
   same with each processor given a ``REPRISE_INSTANCE_ID`` (static membership) and one stopped by
   SIGTERM: a static member does not leave the group when it stops, so its partitions move after one
   session timeout here too.
3. **rebuild**: a partition's topic filled with recorded invocations (Invoke, two InvokerEffects,
   OutboxShipped each), replayed into a fresh store: records/s of ``partitions rebuild`` from the log
   through apply(); then from the changelog (written as a live processor writes it, one delta per
   ``--delta-records`` records, for each size given); then every partition (each holding the same records) rebuilt from
   the log at once, one process per core (``--all``).
4. **new node**: ``reprise dev`` started on an empty home against that log (every partition's
   changelog written as live processors write it): the time until every partition serves, with the
   changelog and without it (``REPRISE_CHANGELOG=0``: every record replayed through apply()).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

from reprise.deploy import native  # noqa: E402

native.activate()  # before the engine's modules: the compiled apply path where built
from reprise.engine.config import Config  # noqa: E402
from reprise.engine.kafka import create_topics, producer_config  # noqa: E402
from reprise.engine.partitioning import partition_for_key  # noqa: E402
from reprise.partitions.state.changelog import ChangelogWriter  # noqa: E402
from reprise.partitions.state.log_apply import log_watermarks  # noqa: E402
from reprise.partitions.state.rebuild import catch_up, rebuild, rebuild_many  # noqa: E402
from reprise.partitions.state.store_files import store_path  # noqa: E402
from reprise.schemas import codec  # noqa: E402
from tests.bench.apply_loop import recorded_log  # noqa: E402
from tests.bench.broker import BENCH_KAFKA, fresh_broker, stop_broker  # noqa: E402
from tests.harness import Engine, Service, call_json  # noqa: E402

BOOTSTRAP = BENCH_KAFKA.bootstrap
PARTITIONS = 4


def keys_on_every_partition() -> list[str]:
    """One object key per partition: a call to each proves every partition is led again."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < PARTITIONS:
        key = f"k{i}"
        found.setdefault(partition_for_key(key, PARTITIONS), key)  # objects route by their key
        i += 1
    return list(found.values())


def until_served(ingress: Engine, keys: list[str], started: float) -> float:
    pending = list(keys)
    while pending:
        key = pending[0]
        status, _ = call_json(ingress, f"/BenchCounter/{key}/add", 1, timeout=30)
        if status == 200:
            pending.pop(0)
        else:
            time.sleep(0.02)
    return time.monotonic() - started


def measure_restart(work: Path, rounds: int) -> list[float]:
    service = Service(work / "effects", work / "service.log", app="tests.bench.benchapp:app")
    service.start()
    eng = Engine(BOOTSTRAP, f"rec{int(time.time())}", work / "dev", PARTITIONS)
    eng.start()
    eng.register(service.uri)
    keys = keys_on_every_partition()
    until_served(eng, keys, time.monotonic())
    figures = []
    try:
        for _ in range(rounds):
            started = time.monotonic()
            eng.kill()
            eng.start(120)
            figures.append(until_served(eng, keys, started))
    finally:
        eng.kill()
        service.kill()
    return figures


def measure_takeover(work: Path, rounds: int, session_ms: int | None = None, sigterm_static: bool = False,
                     bootstrap: str = BOOTSTRAP) -> list[float]:
    service = Service(work / "effects", work / "service2.log", app="tests.bench.benchapp:app")
    service.start()
    figures = []
    try:
        for r in range(rounds):
            ns = f"take{int(time.time())}{r}s{session_ms or 0}{'t' if sigterm_static else ''}"
            ingress = Engine(bootstrap, ns, work / f"t{r}-ingress", PARTITIONS, role="ingress")
            env = {"REPRISE_GROUP_SESSION_TIMEOUT_MS": str(session_ms)} if session_ms else {}
            a_env = {**env, "REPRISE_INSTANCE_ID": f"{ns}-a"} if sigterm_static else env
            b_env = {**env, "REPRISE_INSTANCE_ID": f"{ns}-b"} if sigterm_static else env
            a = Engine(bootstrap, ns, work / f"t{r}-a{session_ms}", PARTITIONS, role="processor", env=a_env)
            b = Engine(bootstrap, ns, work / f"t{r}-b{session_ms}", PARTITIONS, role="processor", env=b_env)
            try:
                for p in (ingress, a, b):
                    p.start(120)
                ingress.register(service.uri)
                keys = keys_on_every_partition()
                until_served(ingress, keys, time.monotonic())
                while not (a.admin_json("/partitions")["partitions"] and b.admin_json("/partitions")["partitions"]):
                    time.sleep(0.2)
                started = time.monotonic()
                if sigterm_static:
                    a.stop(signal.SIGTERM)  # a clean stop; it returns once the process has exited
                else:
                    a.kill()
                figures.append(until_served(ingress, keys, started))
            finally:
                for p in (ingress, a, b):
                    p.kill()
    finally:
        service.kill()
    return figures


def replace_changelog(cfg: Config) -> None:
    """An empty changelog topic (a fresh one), so that each delta size is measured alone."""
    admin = AdminClient({"bootstrap.servers": cfg.bootstrap})
    for fut in admin.delete_topics([cfg.changelog_topic], operation_timeout=30).values():
        fut.result(30)
    while cfg.changelog_topic in admin.list_topics(timeout=10).topics:
        time.sleep(0.2)
    create_topics(cfg)


def measure_rebuild(work: Path, records: int, delta_records: list[int], rounds: int) -> Config:
    """Every partition's topic filled with the same recorded workload (its own invocations); prints the
    rebuild rates of partition 0 from the log alone and from its changelog, then of all partitions at
    once from the log (one process per core)."""
    cfg = Config(bootstrap=BOOTSTRAP, namespace=f"rebuild{int(time.time())}", partitions=PARTITIONS, home=work)
    create_topics(cfg)
    producer = Producer(producer_config(cfg, **{"linger.ms": 20, "batch.size": 1_000_000}))
    for partition in range(PARTITIONS):
        for kind, body in recorded_log(records // 4, partition):
            while True:
                try:
                    producer.produce(cfg.log_topic, value=body, partition=partition, headers=codec.headers_for(kind))
                    break
                except BufferError:
                    producer.poll(0.05)
    producer.flush(300)
    from_log = replace(cfg, changelog=False)
    count, seconds, _ = rebuild(from_log, 0)
    print(f"rebuild from the log (apply): {count} records in {seconds:.2f} s: {count / seconds:,.0f} records/s",
          flush=True)
    # The changelog as a live processor writes it: one delta per window of delta_records (a processor
    # merges the batches of up to 200 ms or 1,000 records: 8 is ~40 records/s, 100 ~500/s, 1,000 busy)
    for size in delta_records:
        shutil.rmtree(store_path(cfg, 0))
        replace_changelog(cfg)
        catch_up(from_log, 0, changelog=ChangelogWriter(cfg, producer, max_records=size), batch=size)
        runs = [rebuild(cfg, 0) for _ in range(rounds)]  # ~1 s each: one run alone drifts ±20%
        count, _, covered = runs[0]
        rates = sorted((r[0] / r[1] for r in runs), reverse=True)
        print(f"rebuild from the changelog (deltas of {size} records): {count} records ({covered} by deltas), "
              f"{rounds} runs: " + ", ".join(f"{rate:,.0f}" for rate in rates) + " records/s", flush=True)
    results, wall = rebuild_many(from_log, list(range(PARTITIONS)))
    total = sum(r.records for r in results.values())
    print(f"rebuild of {PARTITIONS} partitions from the log in parallel ({os.cpu_count()} cores): {total} records "
          f"in {wall:.2f} s: {total / wall:,.0f} records/s", flush=True)
    return cfg


def measure_new_node(work: Path, cfg: Config, delta_records: int) -> None:
    """``reprise dev`` started on an empty home against a log already holding the recorded records on
    every partition (a new node, a lost disk): seconds until every partition serves, with the
    changelog (as live processors would have written it) and without it."""
    replace_changelog(cfg)
    producer = Producer(producer_config(cfg))
    for partition in range(PARTITIONS):
        shutil.rmtree(store_path(cfg, partition), ignore_errors=True)
        catch_up(replace(cfg, changelog=False), partition, changelog=ChangelogWriter(cfg, producer,
                 max_records=delta_records), batch=delta_records)
    results, wall = rebuild_many(cfg, list(range(PARTITIONS)))
    total = sum(r.records for r in results.values())
    print(f"rebuild of {PARTITIONS} partitions from the changelog in parallel ({os.cpu_count()} cores): {total} "
          f"records in {wall:.2f} s: {total / wall:,.0f} records/s", flush=True)
    for partition in range(PARTITIONS):
        shutil.rmtree(store_path(cfg, partition), ignore_errors=True)
    service = Service(work / "effects", work / "service3.log", app="tests.bench.benchapp:app")
    service.start()
    try:
        for changelog in ("1", "0"):
            home = work / f"new-node-{changelog}"
            eng = Engine(BOOTSTRAP, cfg.namespace, home, PARTITIONS, env={"REPRISE_CHANGELOG": changelog})
            started = time.monotonic()
            try:
                eng.start(600)
                eng.register(service.uri)
                seconds = until_served(eng, keys_on_every_partition(), started)
            finally:
                eng.kill()
            what = "with the changelog" if changelog == "1" else "replaying the log"
            print(f"new node ({PARTITIONS} partitions of {records_per_partition(cfg):,} records, empty home), "
                  f"{what}: every partition serving {seconds:.2f} s after start", flush=True)
    finally:
        service.kill()


def records_per_partition(cfg: Config) -> int:
    return log_watermarks(cfg, 0)[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fast-session-ms", type=int, default=2000)
    ap.add_argument("--delta-records", default="8,100,1000", help="log records per changelog delta (a list)")
    ap.add_argument("--only", choices=["restart", "takeover", "rebuild"], help="one measurement only")
    args = ap.parse_args()
    fresh_broker()
    work = Path(tempfile.mkdtemp(prefix="reprise-recovery-"))
    try:
        if args.only in (None, "restart"):
            restart = measure_restart(work, args.rounds)
            print("restart (kill -9, start again, every partition serving): "
                  + ", ".join(f"{s:.2f} s" for s in restart), flush=True)
        if args.only in (None, "takeover"):
            takeover = measure_takeover(work, args.rounds)
            print("takeover (kill -9 of one of two processors, the other serving all): "
                  + ", ".join(f"{s:.2f} s" for s in takeover), flush=True)
            takeover = measure_takeover(work, args.rounds, args.fast_session_ms)
            print(f"takeover, session timeout {args.fast_session_ms} ms: "
                  + ", ".join(f"{s:.2f} s" for s in takeover), flush=True)
            takeover = measure_takeover(work, args.rounds, sigterm_static=True)
            print("takeover (SIGTERM of one of two static members, the other serving all): "
                  + ", ".join(f"{s:.2f} s" for s in takeover), flush=True)
        if args.only in (None, "rebuild"):
            sizes = [int(n) for n in args.delta_records.split(",")]
            cfg = measure_rebuild(work, args.records, sizes, max(args.rounds, 5))
            measure_new_node(work, cfg, sizes[len(sizes) // 2])
    finally:
        shutil.rmtree(work, ignore_errors=True)
        stop_broker()


if __name__ == "__main__":
    main()
