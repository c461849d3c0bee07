"""100,000 durable timers through the engine, end to end: handlers schedule them as delayed one-way
calls (each an outbox entry, then a timer on the callee's partition); every one fires exactly once,
none before its due time, counted at the service."""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.harness import Engine, Service, call_json

pytestmark = pytest.mark.kafka
N = int(os.environ.get("REPRISE_TEST_TIMERS", "100000"))
BATCH = 1000  # timers per schedule call
SCHEDULERS = 4  # schedule calls at once
# Each batch is due this long after it is scheduled: long enough that all of them are pending at once
# (the timer service holds only a window of them in memory), short enough not to idle.
DELAY_MS = 30_000


def schedule(engine: Engine, first: int) -> None:
    """One batch: the handler's ``not_before_ms`` is taken before it runs, so each timer it sets is due
    at or after it."""
    count = min(BATCH, N - first)
    not_before_ms = int(time.time() * 1000) + DELAY_MS
    assert call_json(engine, "/Ticker/schedule", {"first": first, "count": count, "delay_ms": DELAY_MS,
                                                  "not_before_ms": not_before_ms}, 120) == (200, count)


def read_ticks(ticks: Path) -> list[tuple[int, int]]:
    """(timer number, milliseconds it ran after the earliest time it was due) per fired timer."""
    lines = ticks.read_text().splitlines() if ticks.exists() else []
    return [(int(n), int(late)) for n, late in (line.split() for line in lines)]


@pytest.mark.timeout(900)
def test_100k_timers_through_the_engine_fire_exactly_once(kafka_bootstrap: str, namespace: str, tmp_path: Path,
                                                          latch_service: Service, effects: Path) -> None:
    engine = Engine(kafka_bootstrap, namespace, tmp_path / "engine")
    engine.start()
    ticks = effects / "ticks"
    try:
        engine.register(latch_service.uri)
        started = time.monotonic()
        with ThreadPoolExecutor(SCHEDULERS) as pool:
            list(pool.map(lambda first: schedule(engine, first), range(0, N, BATCH)))
        scheduled, early_fired = time.monotonic() - started, len(read_ticks(ticks))
        seen, progress_at = 0, time.monotonic() + DELAY_MS / 1000
        while time.monotonic() - progress_at < 60:  # until all fired, or none more for a minute
            seen_now = len(read_ticks(ticks))
            if seen_now >= N:
                break
            if seen_now > seen:
                seen, progress_at = seen_now, max(progress_at, time.monotonic())
            time.sleep(0.5)
        time.sleep(3)  # a timer that fires twice has the chance to show
        fired = read_ticks(ticks)
        print(f"{N} timers scheduled in {scheduled:.0f} s ({early_fired} fired by then); "
              f"{len(fired)} fired by {time.monotonic() - started:.0f} s after the start")
        counts = Counter(n for n, _ in fired)
        assert sorted(counts) == list(range(N)), f"{len(counts)} distinct of {N} fired"
        assert [n for n, c in counts.items() if c > 1] == [], "timers fired more than once"
        assert [(n, late) for n, late in fired if late < 0] == [], "timers fired before they were due"
        assert engine.admin_json("/timers?limit=10")["timers"] == []  # none left behind
    finally:
        engine.kill()
