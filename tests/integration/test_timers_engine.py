"""100,000 durable timers through the engine, end to end: a handler schedules them as delayed one-way
calls (each an outbox entry, then a timer on the callee's partition); every one fires exactly once,
counted at the service."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.harness import Engine, Service, call_json

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
N = int(os.environ.get("REPRISE_TEST_TIMERS", "100000"))
BATCH = 1000
DELAY_MS = 60_000  # every timer is scheduled well before the first one fires


@pytest.mark.timeout(900)
def test_100k_timers_through_the_engine_fire_exactly_once(kafka_bootstrap: str, namespace: str, tmp_path: Path,
                                                          latch_service: Service, effects: Path) -> None:
    engine = Engine(kafka_bootstrap, namespace, tmp_path / "engine")
    engine.start()
    try:
        engine.register(latch_service.uri)
        started = time.monotonic()
        for first in range(0, N, BATCH):
            assert call_json(engine, "/Ticker/schedule", {"first": first, "count": min(BATCH, N - first),
                                                          "delay_ms": DELAY_MS}, 120) == (200, min(BATCH, N - first))
        scheduled = time.monotonic() - started
        ticks = effects / "ticks"
        deadline = time.monotonic() + DELAY_MS / 1000 + 600
        seen, progress_at = 0, time.monotonic() + DELAY_MS / 1000
        while time.monotonic() < deadline and time.monotonic() - progress_at < 60:  # until done, or stalled
            now_seen = len(ticks.read_text().splitlines()) if ticks.exists() else 0
            if now_seen >= N:
                break
            if now_seen > seen:
                seen, progress_at = now_seen, max(progress_at, time.monotonic())
            time.sleep(1)
        time.sleep(3)  # a timer that fires twice has the chance to show
        fired = Counter(ticks.read_text().splitlines() if ticks.exists() else [])
        print(f"{N} timers scheduled in {scheduled:.0f} s; all fired {time.monotonic() - started:.0f} s after")
        assert sorted(int(k) for k in fired) == list(range(N)), f"{len(fired)} distinct of {N} fired"
        assert [k for k, c in fired.items() if c > 1] == [], "timers fired more than once"
        assert engine.admin_json("/timers?limit=10")["timers"] == []  # none left behind
    finally:
        engine.kill()
