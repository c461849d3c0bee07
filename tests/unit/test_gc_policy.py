"""engine/gc_policy.py: a started engine freezes what startup made and collects young objects rarely."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from reprise.engine import gc_policy
from reprise.engine.config import Config


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_settle_freezes_startup_objects_and_raises_the_young_threshold(restored_gc: None) -> None:
    made_at_startup = [object() for _ in range(10)]  # a list: a container the collector tracks
    gc.unfreeze()
    gc_policy.settle(5_000)
    assert gc.get_threshold() == (5_000, *gc_policy.OLDER_THRESHOLDS)
    assert gc.get_freeze_count() > 0
    # frozen: no generation holds it any more, so no collection walks it
    assert not any(o is made_at_startup for g in range(3) for o in gc.get_objects(g))


def test_zero_keeps_pythons_collector_as_it_is(restored_gc: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    gc_policy.settle(0)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_engine_default_and_environment_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Config().gc_gen0_threshold == gc_policy.DEFAULT_GEN0_THRESHOLD
    monkeypatch.setenv("REPRISE_GC_GEN0_THRESHOLD", "0")
    assert Config.from_env().gc_gen0_threshold == 0
