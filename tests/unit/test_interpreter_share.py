"""The cap on the interpreter a process's queries take (engine/interpreter_share.py), and that scans
and answers draw on it. Clocks are simulated: what is checked is the pacing arithmetic, not speed."""

from __future__ import annotations

import asyncio
import threading
import time

import pyarrow as pa
import pytest

from reprise.engine.interpreter_share import InterpreterShare
from reprise.engine.introspection_schema import batch
from reprise.ingress import sql_query
from reprise.partitions.state.sql_scan import ScanBudget


class Clocks:
    """A wall clock and per-thread CPU clocks that move only when told: work moves both, sleep the wall."""

    def __init__(self) -> None:
        self.wall, self.cpu, self.slept = 0.0, {"a": 0.0, "b": 0.0}, 0.0
        self.thread = "a"

    def work(self, seconds: float) -> None:
        self.wall += seconds
        self.cpu[self.thread] += seconds

    def sleep(self, seconds: float) -> None:
        self.wall += seconds
        self.slept += seconds

    def share(self, share: float) -> InterpreterShare:
        return InterpreterShare(share, slice_s=0.002, clock=lambda: self.wall, sleep=self.sleep,
                                cpu=lambda: self.cpu[self.thread])


@pytest.mark.parametrize("share", [0.25, 0.5])
def test_work_takes_at_most_its_share_of_the_wall_clock(share: float) -> None:
    clocks = Clocks()
    meter = clocks.share(share).meter()
    for _ in range(1000):  # 1 s of interpreter in 1 ms steps, paced after each
        clocks.work(0.001)
        meter.pace()
    assert clocks.wall == pytest.approx(1.0 / share, abs=0.02)  # the rest of the time it slept
    assert clocks.slept == pytest.approx(1.0 / share - 1.0, abs=0.02)


def test_two_threads_share_one_cap() -> None:
    clocks = Clocks()
    share = clocks.share(0.25)
    meters = {}
    for thread in ("a", "b"):
        clocks.thread = thread
        meters[thread] = share.meter()
    for i in range(1000):  # each thread 0.5 s of interpreter, interleaved
        clocks.thread = "ab"[i % 2]
        clocks.work(0.001)
        meters[clocks.thread].pace()
    assert clocks.wall == pytest.approx(4.0, abs=0.02)  # 1 s together at a quarter: not 2 s (a quarter each)


def test_a_share_of_one_never_sleeps() -> None:
    clocks = Clocks()
    meter = clocks.share(1.0).meter()
    for _ in range(100):
        clocks.work(0.001)
        meter.pace()
    assert clocks.slept == 0


def test_a_share_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ValueError, match="expected a share"):
        InterpreterShare(0.5).set_share(0)


class CountingMeter:
    def __init__(self) -> None:
        self.paces = 0

    def pace(self) -> None:
        self.paces += 1


def test_a_scan_paces_every_few_rows() -> None:
    meter = CountingMeter()
    budget = ScanBudget(10_000, time.monotonic() + 30, meter)  # type: ignore[arg-type]
    for _ in range(1_000):
        budget.take()
    assert meter.paces >= 1_000 // 16


def test_a_json_answer_paces_between_slices() -> None:
    rows = [{"partition_key": 1, "service_name": "S", "service_key": str(i), "key": "k", "value": b"v"}
            for i in range(1_000)]
    got = batch("state", rows)
    meter = CountingMeter()
    body = sql_query.as_json(sql_query.Answer(got.schema, [got], False), meter)  # type: ignore[arg-type]
    assert meter.paces >= 1_000 // sql_query.JSON_SLICE
    assert body.count(b'"service_key"') == 1_000
    assert isinstance(got, pa.RecordBatch)


class _Request:
    headers = {"accept": "application/json"}

    async def read(self) -> bytes:
        return b'{"query": "select 1 as one"}'


class _NoRegistry:
    def services(self) -> list:
        return []

    def deployments(self) -> list:
        return []


def test_the_json_answer_is_built_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large answer takes the interpreter for a while: never on the thread that serves HTTP."""
    built_on = []
    as_json = sql_query.as_json

    def recording(*args: object) -> bytes:
        built_on.append(threading.get_ident())
        return as_json(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(sql_query, "as_json", recording)

    async def ask() -> tuple[int, bytes, int]:
        resp = await sql_query.handle(_Request(), lambda *a: None, _NoRegistry(), 4,  # type: ignore[arg-type]
                                      sql_query.QueryLimits(rows=10, scan=10, timeout_s=30))
        return resp.status, resp.body, threading.get_ident()

    status, body, loop_thread = asyncio.run(ask())
    assert status == 200 and b'"one":1' in body
    assert built_on and built_on[0] != loop_thread


class Load:
    """A busy signal the test sets."""

    def __init__(self, busy: bool) -> None:
        self.now = busy

    def busy(self) -> bool:
        return self.now


def test_an_idle_engine_leaves_queries_unpaced() -> None:
    clocks, load = Clocks(), Load(busy=False)
    meter = InterpreterShare(0.25, slice_s=0.002, clock=lambda: clocks.wall, sleep=clocks.sleep,
                             cpu=lambda: clocks.cpu["a"], busy=load.busy).meter()
    for _ in range(1000):
        clocks.work(0.001)
        meter.pace()
    assert clocks.slept == 0 and clocks.wall == pytest.approx(1.0)


def test_a_busy_engine_paces_queries() -> None:
    clocks, load = Clocks(), Load(busy=True)
    meter = InterpreterShare(0.25, slice_s=0.002, clock=lambda: clocks.wall, sleep=clocks.sleep,
                             cpu=lambda: clocks.cpu["a"], busy=load.busy).meter()
    for _ in range(1000):
        clocks.work(0.001)
        meter.pace()
    assert clocks.wall == pytest.approx(4.0, abs=0.02)


@pytest.mark.parametrize("first", [False, True])
def test_load_coming_or_going_mid_query_switches_pacing_within_a_slice(first: bool) -> None:
    """Half of a query's interpreter time on an idle engine and half under load, in either order:
    only the busy half is paced, from the first slice after the switch."""
    clocks, load = Clocks(), Load(busy=first)
    meter = InterpreterShare(0.25, slice_s=0.002, clock=lambda: clocks.wall, sleep=clocks.sleep,
                             cpu=lambda: clocks.cpu["a"], busy=load.busy).meter()
    slept_at_switch = 0.0
    for i in range(1000):
        if i == 500:
            load.now, slept_at_switch = not first, clocks.slept
        clocks.work(0.001)
        meter.pace()
    busy_half_slept = slept_at_switch if first else clocks.slept - slept_at_switch
    idle_half_slept = clocks.slept - slept_at_switch if first else slept_at_switch
    assert busy_half_slept == pytest.approx(0.5 / 0.25 - 0.5, abs=0.02)  # 0.5 s of work at a quarter
    assert idle_half_slept <= 0.002 / 0.25 + 1e-9  # at most the one slice it was in when the load went


def test_the_process_cap_asks_the_process_hot_path() -> None:
    from reprise.engine.hot_path import HOT_PATH
    from reprise.engine.interpreter_share import QUERIES

    assert QUERIES._busy == HOT_PATH.busy
