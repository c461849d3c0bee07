"""How often CPython's cyclic garbage collector runs in a long-lived engine process.

Why: with Python's defaults (a young collection every 700 container allocations, an older one every
10 of those) an engine under one-way sends spent 0.07-0.12 of a core collecting, 8-14% of its CPU
(``gc.callbacks`` timing each collection in thread CPU time): ~50 young collections a second, and a
full one every ~2 s walking every object startup made (modules, functions, classes) and every row
the stores remember (~240k objects in all). With this policy: 0.01-0.04. Almost everything the
engine allocates per request dies by reference counting, never by the collector, so it can run
rarely.

``settle()`` runs once the process has started: it freezes what startup made (the collector never
walks it again) and raises the young threshold; the collector still runs, so reference cycles are
still reclaimed, only in larger steps (a young collection of 10,000 objects takes ~10-25 ms here).
"""

from __future__ import annotations

import gc

DEFAULT_GEN0_THRESHOLD = 10_000
OLDER_THRESHOLDS = (20, 20)  # a middle collection per 20 young ones, a full one per 20 middle ones


def settle(gen0_threshold: int = DEFAULT_GEN0_THRESHOLD) -> None:
    """Freeze what exists now and collect young objects every ``gen0_threshold`` allocations
    (0 keeps Python's defaults and freezes nothing)."""
    if gen0_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0_threshold, *OLDER_THRESHOLDS)
