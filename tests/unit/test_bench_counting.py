"""The benchmarks' counting (tests/bench): which requests a window counts, windows merged, a step's split.

Figures from the benchmarks are only as good as this arithmetic, so it is checked on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from tests.bench import loadgen
from tests.bench.loadgen import Result, run_load
from tests.bench.step_split import split


def test_a_request_counts_in_the_window_it_is_answered_in(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(loadgen.time, "monotonic", lambda: clock[0])

    async def request(_session: object, _ingress: str, _n: int) -> bool:
        await asyncio.sleep(0)
        clock[0] += 1.5  # answered 1.5 s after it was sent
        return True

    # warm-up [0, 2), window [2, 5]: sent at 0 (answered 1.5, warm-up), 1.5 (answered 3.0: counted,
    # though sent in the warm-up), 3.0 (4.5: counted), 4.5 (6.0: after the window, late)
    res = asyncio.run(run_load("http://unused", request, 1, 2.0, 3.0))
    assert (res.completed, res.late, res.ok_total, res.errors) == (2, 1, 4, 0)
    assert res.latencies_ms == [1500.0, 1500.0]
    assert res.rps == pytest.approx(2 / 3.0)


def test_windows_merge_into_one_row() -> None:
    a = Result(completed=10, errors=1, late=2, ok_total=14, latencies_ms=[1.0, 2.0], seconds=5.0)
    b = Result(completed=30, errors=0, late=3, ok_total=35, latencies_ms=[3.0], seconds=5.0)
    merged = Result.merged([a, b])
    assert (merged.completed, merged.errors, merged.late, merged.ok_total) == (40, 1, 5, 49)
    assert sorted(merged.latencies_ms) == [1.0, 2.0, 3.0] and merged.seconds == 10.0
    assert merged.rps == 4.0


def test_a_traced_attempt_splits_into_four_spans_per_step() -> None:
    events = [("rx", 0.0), ("resume", 0.001)]
    t = 0.001
    for _ in range(3):  # per step: closure 2 ms later, proposal 3 ms, result 10 ms, resumed 1 ms
        events += [("run", t + 0.002), ("tx", t + 0.005), ("rx", t + 0.015), ("resume", t + 0.016)]
        t += 0.016
    spans = split(events)
    assert spans is not None and len(spans) == 12
    assert [n for n, _ in spans] == [0, 1, 2, 3] * 3
    assert [round(ms, 6) for _, ms in spans[:4]] == [2.0, 3.0, 10.0, 1.0]
    assert split(events[:-1]) is None  # an attempt cut short (suspended, or still running) is left out
