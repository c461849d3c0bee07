"""The benchmarks' own Kafka broker: fresh data for every engine run, on ports of its own.

Why not the dev/test broker (``.reprise/kafka``): it keeps every namespace ever created, and a broker
holding a few thousand partitions fills its 384 MB heap and runs back-to-back full GCs of ~0.35 s
each (measured on 2026-11-30: 145 full GCs, 52 s of pauses, old generation 100% full, 4,248
partitions). Every produce waiting on an ack then waits out the pause: that was the p99 of one-way
sends. Every engine is measured on fresh data; this makes it so for the log too.
"""

from __future__ import annotations

import os
from pathlib import Path

from reprise.deploy.kafka.local import LocalKafka

ROOT = Path(__file__).resolve().parent.parent.parent
# REPRISE_BENCH_BROKER_PROPERTIES: server.properties lines (";"-separated) to try on the bench broker.
BENCH_KAFKA = LocalKafka(home=ROOT / ".reprise" / "bench", port=19092, controller_port=19093,
                         extra_properties="".join(f"{line}\n" for line in os.environ.get(
                             "REPRISE_BENCH_BROKER_PROPERTIES", "").split(";") if line))


def fresh_broker() -> str:
    """Stop the bench broker, delete its data, start it again; returns its bootstrap address."""
    BENCH_KAFKA.reset()
    return BENCH_KAFKA.start()


def broker_pid() -> int:
    pid = BENCH_KAFKA.pid()
    assert pid is not None, "the bench broker is not running"
    return pid


def stop_broker() -> None:
    BENCH_KAFKA.stop()
