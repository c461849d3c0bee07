"""A critical thread, task or event-loop callback that fails ends the process with exit 70."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from reprise.engine import critical
from tests.harness import ROOT


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_a_failing_critical_thread_ends_the_process() -> None:
    out = _run("""
        import time
        from reprise.engine.critical import critical_thread
        def work():
            raise KeyError("boom")
        critical_thread(work, "apply")
        time.sleep(30)
        print("still alive")
    """)
    assert out.returncode == critical.EXIT_CODE, out
    assert "still alive" not in out.stdout
    assert "critical thread 'apply' failed: KeyError" in out.stderr


def test_a_failing_critical_task_ends_the_process() -> None:
    out = _run("""
        import asyncio
        from reprise.engine.critical import watch_task
        async def work():
            raise RuntimeError("gone")
        async def main():
            watch_task(asyncio.get_running_loop().create_task(work()), "timers")
            await asyncio.sleep(30)
        asyncio.run(main())
    """)
    assert out.returncode == critical.EXIT_CODE, out
    assert "critical task 'timers' failed" in out.stderr


def test_a_failing_event_loop_callback_ends_the_process() -> None:
    out = _run("""
        import asyncio
        from reprise.deploy.runtime import fail_on_callback_error
        def sweep():
            raise ValueError("bad row")
        async def main():
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(fail_on_callback_error)
            loop.call_soon(sweep)
            await asyncio.sleep(30)
        asyncio.run(main())
    """)
    assert out.returncode == critical.EXIT_CODE, out
    assert "event-loop callback failed" in out.stderr


def test_a_cancelled_task_and_a_finished_thread_are_not_failures() -> None:
    out = _run("""
        import asyncio, threading
        from reprise.engine.critical import critical_thread, watch_task, dead_threads, critical_threads
        stop = threading.Event()
        t = critical_thread(stop.wait, "replies")
        assert critical_threads() == ["replies"] and dead_threads() == []
        stop.set(); t.join(5)
        assert critical_threads() == [] and dead_threads() == []
        async def main():
            task = watch_task(asyncio.get_running_loop().create_task(asyncio.sleep(30)), "timers")
            await asyncio.sleep(0.01)
            task.cancel()
            await asyncio.sleep(0.05)
        asyncio.run(main())
        print("clean")
    """)
    assert out.returncode == 0 and "clean" in out.stdout, out


def test_the_fault_injection_names_one_thread() -> None:
    out = _run("""
        import os, time
        os.environ["REPRISE_FAULT_FAIL_THREAD"] = "snapshots"
        from reprise.engine.critical import critical_thread
        critical_thread(lambda: time.sleep(0.2), "apply").join()
        print("apply ran")
        critical_thread(lambda: time.sleep(30), "snapshots")
        time.sleep(30)
    """)
    assert out.returncode == critical.EXIT_CODE and "apply ran" in out.stdout, out
    assert "InjectedFault" in out.stderr


def test_a_callback_on_a_store_closed_by_a_partition_move_is_not_fatal() -> None:
    out = _run("""
        import asyncio
        from rocksdict import DbClosedError
        from reprise.deploy.runtime import fail_on_callback_error
        def ship():
            raise DbClosedError("DB instance already closed")
        async def main():
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(fail_on_callback_error)
            loop.call_soon(ship)
            await asyncio.sleep(0.2)
        asyncio.run(main())
        print("still alive")
    """)
    assert out.returncode == 0 and "still alive" in out.stdout, out
