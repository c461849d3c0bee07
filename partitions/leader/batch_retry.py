"""Retrying a batch whose apply() failed for a transient reason (partitions/core/apply_failures.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from reprise.partitions.core.apply_failures import TransientApplyError

T = TypeVar("T")


def retry_transient(fn: Callable[[], T], attempts: int = 5, first_delay_s: float = 0.1,
                    sleep: Callable[[float], None] = time.sleep,
                    on_retry: Callable[[TransientApplyError, int], None] | None = None) -> T:
    """Run ``fn`` (apply one batch) again after a TransientApplyError, with doubling delays; after
    ``attempts`` failures the last error propagates (the processor then ends, see engine/critical.py)."""
    delay = first_delay_s
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except TransientApplyError as e:
            if attempt == attempts:
                raise
            if on_retry is not None:
                on_retry(e, attempt)
            sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")
