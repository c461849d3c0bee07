"""Log records per request, by kind: how many times a workload crosses the log.

A request's cost in Kafka is mostly its records (each one produced, fetched and applied), so this
counts them: ``reprise dev`` on the benchmarks' broker, a short closed-loop run of each workload,
then the records each topic gained, by schema kind, divided by the requests answered. Figures only.

    python tests/bench/records.py greet,signup_workflow
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

from reprise.deploy import native  # noqa: E402

native.activate()  # before the engine's modules: the compiled apply path where built
from reprise.schemas import codec  # noqa: E402
from tests.bench.broker import fresh_broker, stop_broker  # noqa: E402
from tests.bench.loadgen import WORKLOADS, greet, run_load  # noqa: E402
from tests.bench.run import INGRESS, register, start_service, wait_http  # noqa: E402

Offsets = dict[str, dict[int, int]]


def end_offsets(bootstrap: str, namespace: str) -> Offsets:
    """Every partition's end offset, for each of the namespace's topics."""
    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{namespace}.records"})
    try:
        return {name: {p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
                       for p in topic.partitions}
                for name, topic in topics.items() if name.startswith(namespace + ".")}
    finally:
        consumer.close()


def kinds_between(bootstrap: str, topic: str, start: dict[int, int], end: dict[int, int]) -> Counter[str]:
    """The schema kinds of the topic's records from ``start`` up to ``end``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "records", "isolation.level": "read_committed"})
    wanted = {p: end[p] - start.get(p, 0) for p in end if end[p] > start.get(p, 0)}
    consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in wanted])
    kinds: Counter[str] = Counter()
    try:
        while sum(wanted.values()) > 0:
            m = consumer.poll(10)
            if m is None:
                break  # transaction markers take offsets but are never delivered
            if m.error() is None and m.offset() < end[m.partition()]:
                kinds[codec.kind_of(m.headers())[0]] += 1
                wanted[m.partition()] = end[m.partition()] - m.offset() - 1
    finally:
        consumer.close()
    return kinds


def main() -> None:
    requests = {name: request for name, request, _ in WORKLOADS}
    names = sys.argv[1].split(",") if len(sys.argv) > 1 else ["greet", "signup_workflow"]
    bootstrap = fresh_broker()
    service = start_service()
    namespace = f"records{int(time.time())}"
    engine = subprocess.Popen([sys.executable, "-m", "reprise", "dev", "--kafka", bootstrap, "--namespace",
                               namespace], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        wait_http(INGRESS + "/restate/health")
        register()
        asyncio.run(run_load(INGRESS, greet, 4, 0, 3))
        for name in names:
            time.sleep(3)  # what the last workload left in flight lands before the count starts
            before = end_offsets(bootstrap, namespace)
            answered = asyncio.run(run_load(INGRESS, requests[name], 4, 0, 5)).ok_total
            time.sleep(3)
            after = end_offsets(bootstrap, namespace)
            print(f"{name}: {answered} answered", flush=True)
            for topic, ends in sorted(after.items()):
                gained = sum(ends.values()) - sum(before.get(topic, {}).values())
                if not gained:
                    continue
                print(f"  {topic}: {gained / answered:.2f} records per request", flush=True)
                for kind, n in kinds_between(bootstrap, topic, before.get(topic, {}), ends).most_common():
                    print(f"    {kind}: {n / answered:.2f}", flush=True)
    finally:
        os.killpg(engine.pid, signal.SIGTERM)
        engine.wait(60)
        os.killpg(service.pid, signal.SIGKILL)
        stop_broker()


if __name__ == "__main__":
    main()
