"""A running engine keeps librdkafka's and RocksDB's threads in SCHED_BATCH, its main thread not."""

from __future__ import annotations

import os
import sys
import time

import pytest

from reprise.engine.thread_policy import HELPER_PREFIXES, thread_names
from tests.harness import Engine, call_json

pytestmark = [pytest.mark.kafka,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_BATCH is Linux's")]


def _policies(pid: int) -> dict[int, tuple[str, int]]:
    out = {}
    for tid, name in thread_names(pid).items():
        try:
            out[tid] = (name, os.sched_getscheduler(tid))
        except OSError:  # ended meanwhile
            continue
    return out


def test_the_engines_helper_threads_run_sched_batch(engine: Engine) -> None:
    assert call_json(engine, "/Steps/three", "tp")[0] == 200  # producers, consumers and stores all in use
    assert engine.popen is not None
    pid = engine.popen.pid
    deadline = time.monotonic() + 15  # the engine scans every 5 s
    while True:
        threads = _policies(pid)
        helpers = {tid: p for tid, (name, p) in threads.items() if name.startswith(HELPER_PREFIXES)}
        if helpers and all(p == os.SCHED_BATCH for p in helpers.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(helpers) >= 4, threads
    assert all(p == os.SCHED_BATCH for p in helpers.values()), threads
    assert threads[pid][1] == os.SCHED_OTHER  # the thread that runs the event loop is left alone
