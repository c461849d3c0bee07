"""One contract suite for both stores, so the in-memory twin cannot drift from RocksDB."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from reprise.partitions.core.memory_store import MemoryStore
from reprise.partitions.core.transaction import APPLIED_OFFSET, KeyValueStore, Transaction, applied_offset, prefix_end
from reprise.partitions.state.rocks_store import RocksStore


@pytest.fixture(params=["memory", "rocks"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValueStore]:
    s: KeyValueStore = MemoryStore() if request.param == "memory" else RocksStore(tmp_path / "db")
    yield s
    s.close()


def test_transaction_reads_its_own_writes_and_commits_atomically(store: KeyValueStore) -> None:
    tx = Transaction(store)
    tx.put(b"a/1", b"x")
    assert tx.get(b"a/1") == b"x" and store.get(b"a/1") is None
    tx.commit(41)
    assert store.get(b"a/1") == b"x" and applied_offset(store) == 41


def test_scan_merges_pending_writes_and_deletes_in_key_order(store: KeyValueStore) -> None:
    tx = Transaction(store)
    for k in (b"p/2", b"p/1", b"q/1"):
        tx.put(k, k)
    tx.commit(1)
    tx.delete(b"p/1")
    tx.put(b"p/0", b"new")
    assert [k for k, _ in tx.scan(b"p/")] == [b"p/0", b"p/2"]
    assert [k for k, _ in store.scan(b"p/")] == [b"p/1", b"p/2"]


def test_scan_stops_at_the_prefix_end_with_every_byte_value(store: KeyValueStore) -> None:
    """RocksStore bounds its iterator at prefix_end(prefix): the rows at either side of that bound,
    0xff bytes in keys and prefixes, and deleted keys behind the prefix must not change a scan."""
    keys = [b"p", b"p\x00", b"p/", b"p/\x00", b"p/a\xff", b"p/\xff", b"p/\xff\xff", b"p0", b"p0/x", b"q",
            b"\xff", b"\xff\xff/a"]
    tx = Transaction(store)
    for k in keys + [b"p0/dead%d" % i for i in range(50)]:
        tx.put(k, k)
    tx.commit(1)
    for i in range(50):
        tx.delete(b"p0/dead%d" % i)
    tx.commit(2)
    for prefix in (b"p/", b"p", b"p/\xff", b"p/a", b"\xff", b"\xff\xff", b"p0/", b"r"):
        assert [k for k, _ in store.scan(prefix)] == sorted(k for k in keys if k.startswith(prefix)), prefix
    assert [k for k, _ in store.scan(b"", b"q")] == [b"q", b"\xff", b"\xff\xff/a"]


def test_prefix_end() -> None:
    assert prefix_end(b"p/") == b"p0" and prefix_end(b"a\xff") == b"b" and prefix_end(b"a\x01\xff\xff") == b"a\x02"
    assert prefix_end(b"\xff\xff") is None and prefix_end(b"") is None


def test_fresh_store_has_no_offset(store: KeyValueStore) -> None:
    assert applied_offset(store) == -1


def test_rocks_survives_reopen(tmp_path: Path) -> None:
    s = RocksStore(tmp_path / "db")
    tx = Transaction(s)
    tx.put(b"k", b"v")
    tx.commit(9)
    s.close()
    s = RocksStore(tmp_path / "db")
    assert s.get(b"k") == b"v" and applied_offset(s) == 9
    s.close()


def test_scan_from_a_start_key(store: KeyValueStore) -> None:
    tx = Transaction(store)
    for k in (b"t/1", b"t/2", b"t/3", b"u/1"):
        tx.put(k, b"")
    tx.commit(1)
    assert [k for k, _ in store.scan(b"t/", b"t/2")] == [b"t/2", b"t/3"]
    assert [k for k, _ in store.scan(b"t/", b"a")] == [b"t/1", b"t/2", b"t/3"]


def test_lazy_writes_encode_once_at_commit_and_roll_back_like_bytes(store: KeyValueStore) -> None:
    encoded: list[object] = []

    def encode(obj: object) -> bytes:
        encoded.append(obj)
        return repr(obj).encode()

    tx = Transaction(store)
    tx.put_lazy(b"k", {"v": 1}, encode)
    tx.put_lazy(b"k", {"v": 2}, encode)
    assert tx.object_at(b"k") == {"v": 2} and encoded == []
    tx.savepoint()
    tx.put_lazy(b"k", {"v": 3}, encode)
    tx.rollback()
    assert tx.get(b"k") == b"{'v': 2}"  # a raw read sees bytes
    assert dict(tx.scan(b"k")) == {b"k": b"{'v': 2}"}
    encoded.clear()
    tx.commit(7)
    assert encoded == [{"v": 2}] and store.get(b"k") == b"{'v': 2}"
    # The store remembers the committed object, until bytes or a delete replace its value.
    assert Transaction(store).object_at(b"k") == {"v": 2}
    tx = Transaction(store)
    tx.put(b"k", b"raw")
    assert tx.object_at(b"k") is None and Transaction(store).object_at(b"k") == {"v": 2}
    tx.commit(8)
    assert Transaction(store).object_at(b"k") is None and store.get(b"k") == b"raw"
    tx = Transaction(store)
    tx.put_lazy(b"k", {"v": 4}, encode)
    tx.commit(9)
    tx = Transaction(store)
    tx.delete(b"k")
    assert tx.object_at(b"k") is None
    tx.commit(10)
    assert Transaction(store).object_at(b"k") is None and store.get(b"k") is None


def test_rocks_reads_its_latest_writes_from_memory_and_the_rest_from_disk(tmp_path: Path) -> None:
    store = RocksStore(tmp_path / "db")
    store.RECENT = store.OBJECTS = 8  # type: ignore[misc]
    for batch in range(5):
        store.write({f"k{batch}-{i}".encode(): f"v{batch}-{i}".encode() for i in range(6)})
    store.write({b"k0-0": None, b"k4-5": None, b"k4-4": b"new"})
    assert len(store._recent) <= 8  # noqa: SLF001 - the cache stays bounded
    for batch in range(5):
        store.write({b"o%d" % batch: b"x"}, {b"o%d" % batch: {"n": batch}})
        store.write({f"p{batch}-{i}".encode(): b"y" for i in range(3)}, {f"p{batch}-{i}".encode(): i for i in range(3)})
    assert len(store._objects) <= 8 and store.committed_object(b"p4-2") == 2  # noqa: SLF001 - bounded too
    expected = {f"k{b}-{i}".encode(): f"v{b}-{i}".encode() for b in range(5) for i in range(6)}
    expected.update({b"k0-0": None, b"k4-5": None, b"k4-4": b"new"})
    assert {k: store.get(k) for k in expected} == expected
    store.close()
    reopened = RocksStore(tmp_path / "db")
    assert {k: reopened.get(k) for k in expected} == expected
    reopened.close()


def test_scans_agree_with_a_full_walk_through_writes_rollbacks_and_commits(store: KeyValueStore) -> None:
    """Scans look only at their table's writes (an index the transaction keeps as keys arrive): a
    random mix of puts, deletes, records rolled back after a scan and commits (one transaction
    object throughout) must scan exactly like a plain dict of everything written, for prefixes of
    every length."""
    rng = random.Random(7)
    tables = [b"ib/", b"st/", b"pw/", b"ibx", b"i"]
    prefixes = (b"", b"i", b"ib", b"ib/", b"ib/o1/", b"st/o0/", b"pw/", b"ibx")
    tx = Transaction(store)

    def check(pending: dict[bytes, bytes]) -> None:
        for prefix in prefixes:
            expected = sorted((k, v) for k, v in pending.items() if k.startswith(prefix))
            assert list(tx.scan(prefix)) == expected, prefix
            start = prefix + b"o1/05"
            assert list(tx.scan(prefix, start)) == [(k, v) for k, v in expected if k >= start]
            stop = prefix + b"o2"
            assert tx.scan_below(prefix, stop, 3) == [(k, v) for k, v in expected if k < stop][:3]

    truth: dict[bytes, bytes] = {}  # what is committed
    for batch in range(30):
        pending = dict(truth)
        for _record in range(rng.randint(1, 12)):
            tx.savepoint()
            before = dict(pending)
            for _ in range(rng.randint(1, 6)):
                key = rng.choice(tables) + b"o%d/%02d" % (rng.randint(0, 2), rng.randint(0, 20))
                if rng.random() < 0.3:
                    tx.delete(key)
                    pending.pop(key, None)
                else:
                    tx.put(key, b"v%d" % rng.randint(0, 99))
                    pending[key] = tx.get(key)  # type: ignore[assignment]
            check(pending)  # a record scans, then fails: its new keys leave the transaction
            if rng.random() < 0.2:
                tx.rollback()
                pending = before
                check(pending)
        tx.commit(batch)
        truth = {**pending, APPLIED_OFFSET: str(batch).encode()}
        check(truth)
