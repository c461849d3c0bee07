"""Helper threads go to SCHED_BATCH; every other thread keeps its policy (engine/thread_policy.py)."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reprise.engine import thread_policy

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_BATCH, /proc/self/task: Linux")


@pytest.fixture
def named_thread() -> Iterator[tuple[int, threading.Event]]:
    """A live thread of this process, renamed as the test wants through /proc; ends with the test."""
    started, stop = threading.Event(), threading.Event()
    tid: list[int] = []

    def run() -> None:
        tid.append(threading.get_native_id())
        started.set()
        stop.wait()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    started.wait()
    yield tid[0], stop
    stop.set()
    t.join()


def test_a_helper_named_thread_is_demoted_and_the_others_are_not(named_thread: tuple[int, threading.Event]) -> None:
    tid, _ = named_thread
    Path(f"/proc/self/task/{tid}/comm").write_text("rdk:broker-test")
    thread_policy.demote_helpers()
    assert os.sched_getscheduler(tid) == os.SCHED_BATCH
    assert os.sched_getscheduler(threading.get_native_id()) == os.SCHED_OTHER  # this (the caller's) thread
    assert thread_policy.demote_helpers() == 0  # already demoted: nothing left to move


def test_a_thread_with_another_name_keeps_its_policy(named_thread: tuple[int, threading.Event]) -> None:
    tid, _ = named_thread
    Path(f"/proc/self/task/{tid}/comm").write_text("apply-0")
    thread_policy.demote_helpers()
    assert os.sched_getscheduler(tid) == os.SCHED_OTHER


def test_librdkafka_and_rocksdb_threads_carry_the_names_the_policy_looks_for() -> None:
    """The real libraries: if either renames its threads, this fails rather than the policy going quiet."""
    from confluent_kafka import Producer
    from rocksdict import Rdict

    db = Rdict(tempfile.mkdtemp())
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "log_level": 0})
    try:
        # librdkafka 2.16 starts broker threads and may end one again within milliseconds (seen: a
        # thread named rdk:broker-1 gone by the next scan), so the names are collected over the scans
        seen: set[str] = set()
        deadline = time.monotonic() + 5
        while not any(n.startswith("rdk:broker") for n in seen) and time.monotonic() < deadline:
            seen.update(thread_policy.thread_names().values())
            time.sleep(0.05)
        names = sorted(seen)
        assert any(n.startswith("rdk:main") for n in names), names
        assert any(n.startswith("rdk:broker") for n in names), names
        assert any(n.startswith("rocksdb:") for n in names), names
        before = thread_policy.thread_names()
        # this producer's rdk:main is new and lives as long as the producer; RocksDB's pool is
        # process-wide and may have been demoted by an earlier test
        assert thread_policy.demote_helpers() >= 1
        for tid, name in before.items():  # threads started since are the next scan's
            if name.startswith(thread_policy.HELPER_PREFIXES):
                try:
                    assert os.sched_getscheduler(tid) == os.SCHED_BATCH, name
                except ProcessLookupError:  # ended meanwhile
                    continue
    finally:
        producer.flush(0)
        db.close()
