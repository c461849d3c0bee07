"""Fail loud, never half-alive: the background threads and tasks a process cannot do without.

A process whose apply thread or reply listener died would keep answering its port while doing
nothing useful. A critical thread or task that fails instead ends the whole process with exit code
70 (EX_SOFTWARE), so its supervisor (systemd, Kubernetes, compose) restarts it; ``/health/live``
reports a critical thread that is no longer running. Components handle the failures they can
(skip a bad record with a metric, dead-letter, retry) and let only the rest reach this module.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

EXIT_CODE = 70  # EX_SOFTWARE: a supervisor restarts the process
FAULT_ENV = "REPRISE_FAULT_FAIL_THREAD"  # tests: the critical thread or task of this name fails at start

_lock = threading.Lock()
_running: set[threading.Thread] = set()  # critical threads that must stay alive while the process runs


class InjectedFault(RuntimeError):
    """Raised by a critical component named in REPRISE_FAULT_FAIL_THREAD (tests only)."""


def fail_process(reason: str, exc: BaseException | None = None) -> None:
    """Log why and end the process at once with EXIT_CODE (no clean-up: the log and the stores are
    crash-safe, and a clean-up could hang on the very component that failed)."""
    try:
        log.critical("%s: ending the process (exit %d) so that its supervisor restarts it", reason, EXIT_CODE,
                     exc_info=exc)
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stderr.flush()
        sys.stdout.flush()
    finally:
        os._exit(EXIT_CODE)


def _check_fault(name: str) -> None:
    if os.environ.get(FAULT_ENV) == name:
        raise InjectedFault(f"fault injected into {name} ({FAULT_ENV})")


def critical_thread(target: Callable[..., Any], name: str, *args: Any) -> threading.Thread:
    """Start a daemon thread running ``target(*args)``; an exception escaping it ends the process.
    A target that returns (its component was stopped) leaves the liveness set quietly."""

    def run() -> None:
        try:
            _check_fault(name)
            target(*args)
        except BaseException as e:  # noqa: BLE001 - whatever it is, the process cannot go on half-alive
            fail_process(f"critical thread {name!r} failed: {type(e).__name__}: {e}", e)
        with _lock:
            _running.discard(threading.current_thread())

    thread = threading.Thread(target=run, name=name, daemon=True)
    with _lock:
        _running.add(thread)
    thread.start()
    return thread


def watch_task(task: asyncio.Task[Any], name: str) -> asyncio.Task[Any]:
    """End the process if ``task`` ends with an exception (a cancelled task was stopped on purpose)."""

    def done(t: asyncio.Task[Any]) -> None:
        if t.cancelled():
            return
        exc = t.exception()
        if exc is not None:
            fail_process(f"critical task {name!r} failed: {type(exc).__name__}: {exc}", exc)

    task.add_done_callback(done)
    return task


def check_task_fault(name: str) -> None:
    """Call at the start of a critical task's coroutine: lets a test make it fail."""
    _check_fault(name)


def dead_threads() -> list[str]:
    """Critical threads that were started, were not stopped, and are no longer running."""
    with _lock:
        return sorted(t.name for t in _running if not t.is_alive())


def critical_threads() -> list[str]:
    with _lock:
        return sorted(t.name for t in _running)
