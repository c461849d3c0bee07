"""A store refused at start (ahead of its log) is closed before the refusal propagates."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprise.engine.config import Config
from reprise.partitions.core.memory_store import MemoryStore
from reprise.partitions.core.transaction import Transaction
from reprise.partitions.state.log_match import StoreAheadOfLog, check_store_matches_log_or_close


class ClosingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self) -> None:
        self.closed = True


def _store_at(offset: int) -> ClosingStore:
    store = ClosingStore()
    Transaction(store).commit(offset)  # no mark: the check needs no broker
    return store


@pytest.mark.parametrize("restored", [False, True])
def test_a_store_ahead_of_its_log_is_closed_and_refused(restored: bool) -> None:
    cfg = Config(bootstrap="unused:9092", namespace="ns", partitions=4)
    store = _store_at(10)
    with pytest.raises(StoreAheadOfLog, match="ahead of its log"):
        check_store_matches_log_or_close(cfg, 2, store, Path("store"), 0, 5, restored=restored)
    assert store.closed


def test_a_store_within_its_log_stays_open() -> None:
    cfg = Config(bootstrap="unused:9092", namespace="ns", partitions=4)
    store = _store_at(3)
    check_store_matches_log_or_close(cfg, 2, store, Path("store"), 0, 5)
    assert not store.closed
