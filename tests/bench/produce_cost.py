"""What one ``Producer.produce`` call costs the calling thread, alone and right behind another.

At ``linger.ms`` 0 the first record into an empty librdkafka queue wakes the producer's broker
thread, inside ``produce()`` and with the GIL held; records produced right behind it find the
thread awake. This measures both, on the benchmarks' broker (fresh data), with the engine's
producer settings: records of 300 bytes with two headers, one at a time every 2 ms, or in bursts of
four (to four partitions, or all to one) every 8 ms. Prints the wall time of each call by its place
in the burst (p50, mean) and the calling thread's CPU per record (pacing's poll and sleep included).
Figures only, nothing asserted.

    python tests/bench/produce_cost.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from reprise.engine.config import Config  # noqa: E402
from reprise.engine.kafka import producer_config  # noqa: E402
from tests.bench.broker import fresh_broker, stop_broker  # noqa: E402

TOPIC = "produce-cost"
HEADERS = [("reprise-kind", b"Invoke"), ("reprise-version", b"1")]
VALUE = b"x" * 300


def measure(bootstrap: str, name: str, burst: int, one_partition: bool, records: int = 6000) -> None:
    producer = Producer(producer_config(Config(bootstrap=bootstrap)))
    producer.produce(TOPIC, value=VALUE, partition=0)
    producer.flush(10)
    by_place: list[list[int]] = [[] for _ in range(burst)]
    cpu = time.thread_time()
    for i in range(records // burst):
        for j in range(burst):
            partition = 0 if one_partition else (i * burst + j) % 8
            started = time.perf_counter_ns()
            producer.produce(TOPIC, value=VALUE, headers=HEADERS, partition=partition)
            by_place[j].append(time.perf_counter_ns() - started)
        producer.poll(0)
        time.sleep(0.002 * burst)
    cpu_per_record = (time.thread_time() - cpu) / records * 1e6
    producer.flush(10)
    places = "  ".join(f"#{j + 1} p50 {statistics.median(v) / 1000:5.1f} mean {statistics.mean(v) / 1000:5.1f} µs"
                       for j, v in enumerate(by_place))
    print(f"{name:26s} thread CPU {cpu_per_record:5.1f} µs/record | {places}", flush=True)


def main() -> None:
    bootstrap = fresh_broker()
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(TOPIC, 8, 1)])[TOPIC].result(30)
        measure(bootstrap, "warm-up (not counted)", 1, False)
        for _ in range(2):
            measure(bootstrap, "one at a time", 1, False)
            measure(bootstrap, "bursts of 4, 4 partitions", 4, False)
            measure(bootstrap, "bursts of 4, 1 partition", 4, True)
    finally:
        stop_broker()


if __name__ == "__main__":
    main()
