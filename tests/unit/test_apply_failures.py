"""A transient failure inside apply() (memory, RocksDB I/O) retries the batch; it never rejects the record.
A failure of the record, a bare ``Exception`` of a bug included, is rejected."""

from __future__ import annotations

from typing import Any

import pytest
from rocksdict import DbClosedError

from reprise.engine.ids import InvocationId
from reprise.partitions.core import apply as apply_module
from reprise.partitions.core.apply import LogRecord, apply_batch
from reprise.partitions.core.apply_failures import TransientApplyError, is_transient
from reprise.partitions.core.memory_store import MemoryStore
from reprise.partitions.core.transaction import Transaction, applied_offset
from reprise.partitions.leader.leadership import Leadership
from reprise.partitions.leader.processor import PartitionProcessor
from reprise.partitions.state.log_apply import retry_transient
from reprise.partitions.state.rocks_store import RocksStore, StoreIOError
from reprise.schemas import codec
from tests.unit.apply_helpers import N, inv_on, new_partition


def _invoke(inv: str, offset: int) -> LogRecord:
    rec = {"invocation_id": inv, "service": "S", "handler": "h", "input": b'"x"', "created_ms": 1}
    return LogRecord("Invoke", 1, codec.decode("Invoke", 1, codec.encode("Invoke", rec)), offset, 1)


def _failing_invoke(monkeypatch: pytest.MonkeyPatch, errors: list[BaseException]) -> None:
    """The Invoke handler raises the given errors, one per call, then works."""
    real = apply_module.HANDLERS[("Invoke", 1)]

    def handler(ctx: Any, value: dict[str, Any], ts: int) -> None:
        if errors:
            raise errors.pop(0)
        real(ctx, value, ts)

    monkeypatch.setitem(apply_module.HANDLERS, ("Invoke", 1), handler)


@pytest.mark.parametrize("error", [MemoryError(), OSError(5, "Input/output error"),
                                   StoreIOError("RocksDB: IO error: While appending to file: 000012.log")])
def test_a_transient_failure_aborts_the_batch_instead_of_rejecting(monkeypatch: pytest.MonkeyPatch,
                                                                    error: BaseException) -> None:
    p = new_partition()
    before = dict(p.store.data)
    _failing_invoke(monkeypatch, [error])
    tx = Transaction(p.store)
    with pytest.raises(TransientApplyError) as raised:
        apply_batch(tx, 0, N, [_invoke(inv_on(0), 5)])
    assert raised.value.offset == 5 and raised.value.cause is error
    assert p.store.data == before  # nothing committed: the caller drops tx


@pytest.mark.parametrize("error", [ValueError("bad"), KeyError("x"), TypeError("t"),
                                   Exception("a handler's bug")])  # noqa: TRY002 - a bare Exception is the record's
def test_a_failure_of_the_record_is_rejected_deterministically(monkeypatch: pytest.MonkeyPatch,
                                                               error: BaseException) -> None:
    p = new_partition()
    _failing_invoke(monkeypatch, [error])
    tx = Transaction(p.store)
    result = apply_batch(tx, 0, N, [_invoke(inv_on(0), 5)])
    assert [r.offset for r in result.rejected] == [5] and not is_transient(error)


def test_a_retried_batch_ends_as_if_nothing_had_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The replay property: the state after a transient failure and a retry equals a clean run."""
    def run(errors: list[BaseException]) -> tuple[dict[bytes, bytes], list[Any]]:
        p = new_partition()
        _failing_invoke(monkeypatch, errors)
        records = [_invoke(inv_on(0), 5), _invoke(str(InvocationId(0, 77)), 6)]
        retries: list[int] = []

        def once() -> Any:
            tx = Transaction(p.store)
            result = apply_batch(tx, 0, N, records)
            tx.commit(6)
            return result

        result = retry_transient(once, sleep=lambda _s: None, on_retry=lambda _e, n: retries.append(n))
        assert result.rejected == []
        return dict(p.store.data), retries

    clean, none = run([])
    retried, retries = run([MemoryError(), StoreIOError("RocksDB: IO error")])
    assert none == [] and retries == [1, 2]
    assert retried == clean


def test_a_transient_failure_that_persists_propagates() -> None:
    calls: list[int] = []

    def always() -> None:
        calls.append(1)
        raise TransientApplyError(7, MemoryError())

    with pytest.raises(TransientApplyError):
        retry_transient(always, attempts=4, sleep=lambda _s: None)
    assert len(calls) == 4


class FlakyStore(MemoryStore):
    """A store whose next writes fail as the RocksDB store reports an I/O error."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def write(self, puts: Any, objects: Any = None) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreIOError("RocksDB: IO error: No space left on device")
        super().write(puts, objects)


class Msg:
    def __init__(self, kind: str, value: dict[str, Any], offset: int) -> None:
        self._kind, self._value, self._offset = kind, codec.encode(kind, value), offset

    def headers(self) -> list[tuple[str, bytes]]:
        return codec.headers_for(self._kind)

    def value(self) -> bytes:
        return self._value

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return 1, 1_000

    def partition(self) -> int:
        return 0


def _processor(store: MemoryStore) -> PartitionProcessor:
    """Just what the apply loop's batch step needs, without Kafka."""
    proc = PartitionProcessor.__new__(PartitionProcessor)
    proc.stores, proc.partition_count, proc.changelog = {0: store}, N, None  # type: ignore[dict-item]
    proc.leadership = Leadership("me", lambda _p, _claim: None, lambda _p, _holder: None, lambda: 0)
    proc.leading = proc.leadership.leading
    return proc


def test_the_processor_retries_a_batch_whose_commit_failed_transiently() -> None:
    inv = inv_on(0)
    batch = [Msg("Invoke", {"invocation_id": inv, "service": "S", "handler": "h", "input": b'"x"', "created_ms": 1},
                 0)]
    flaky, clean = FlakyStore(failures=2), MemoryStore()
    _processor(flaky)._apply_batch(0, batch)  # type: ignore[arg-type]
    _processor(clean)._apply_batch(0, batch)  # type: ignore[arg-type]
    assert flaky.failures == 0 and applied_offset(flaky) == 0
    assert flaky.data == clean.data  # as if it had never failed: the record was not rejected


def test_the_processor_gives_up_loudly_when_the_failure_persists() -> None:
    batch = [Msg("Invoke", {"invocation_id": inv_on(0), "service": "S", "handler": "h", "input": b"",
                            "created_ms": 1}, 0)]
    store = FlakyStore(failures=100)
    with pytest.raises(TransientApplyError):  # the apply thread fails: the process ends (engine/critical.py)
        _processor(store)._apply_batch(0, batch)  # type: ignore[arg-type]
    assert applied_offset(store) == -1


class FailingRdict:
    """Stands in for rocksdict's database: every call fails as rocksdict reports an I/O error."""

    def __getattr__(self, name: str) -> Any:
        def fail(*_args: Any, **_kwargs: Any) -> None:
            raise Exception("IO error: No space left on device")  # noqa: TRY002 - what rocksdict raises
        return fail


def test_the_rocks_store_reports_rocksdicts_errors_as_store_errors(tmp_path: Any) -> None:
    store = RocksStore(tmp_path / "db")
    real = store.db
    store._db = FailingRdict()  # type: ignore[assignment]
    for call in (lambda: store.get(b"k"), lambda: store.write({b"k": b"v"}), lambda: list(store.scan(b"k")),
                 lambda: store.write_restored({b"k": b"v"}), store.flush):
        with pytest.raises(StoreIOError) as raised:
            call()
        assert type(raised.value.__cause__) is Exception
    store._db = real  # type: ignore[assignment]
    store.close()
    with pytest.raises(DbClosedError):  # the partition moved away: its own type, which callers recognise
        store.get(b"k")


def test_a_failing_rocks_store_retries_the_batch_instead_of_rejecting(tmp_path: Any) -> None:
    """End to end through the real store: a write rocksdict fails is retried, the record is not rejected."""
    store = RocksStore(tmp_path / "db")
    real, failures = store.db, [2]

    class FailingTwice:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def write(self, *args: Any) -> None:
            if failures[0]:
                failures[0] -= 1
                raise Exception("IO error: No space left on device")  # noqa: TRY002 - what rocksdict raises
            real.write(*args)

    store._db = FailingTwice()  # type: ignore[assignment]
    batch = [Msg("Invoke", {"invocation_id": inv_on(0), "service": "S", "handler": "h", "input": b'"x"',
                            "created_ms": 1}, 0)]
    proc = _processor(store)  # type: ignore[arg-type]
    proc._dead_letter = lambda *a: pytest.fail(f"rejected: {a}")  # type: ignore[method-assign]
    proc._apply_batch(0, batch)  # type: ignore[arg-type]
    assert failures == [0] and applied_offset(store) == 0
    store._db = real  # type: ignore[assignment]
    store.close()
