"""The buffered writes of one batch over a key-value store: what apply() reads and writes.

Reads see the transaction's own writes, and ``commit`` hands every write of a consumed batch plus the
applied offset to the store as one atomic write: the store never holds part of a batch, and the
offset it holds says exactly which records its rows reflect. Pure: the store behind it is RocksDB in
a processor (partitions/state/rocks_store.py) and a dict in unit tests (memory_store.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, cast

APPLIED_OFFSET = b"meta/applied_offset"
ABSENT = object()
"""A marker no stored value equals: "no entry at all" where ``None`` means "deleted" (an undo
record of a key the batch had not written yet; a store's cache that does not hold the key)."""


class StoreIOError(Exception):
    """The store failed, not the caller: an I/O error, corruption.

    rocksdict reports these as a bare ``Exception``, which cannot be told apart from a bug's bare
    ``Exception`` once it has left the store. The RocksDB store turns them into this type where it
    calls rocksdict, so a failed apply is retried for this type only (apply_failures.py) and a
    record's own failure is never mistaken for one."""


class Lazy:
    """A value written as an object and encoded only when the batch commits (or a raw read needs it).

    An invocation's status row is typically written several times within one batch (invoked,
    suspended, completed); encoding it once at commit instead of at every write is most of what
    apply() spends on Avro.
    """

    __slots__ = ("obj", "encode")

    def __init__(self, obj: object, encode: Callable[[object], bytes]) -> None:
        self.obj, self.encode = obj, encode


class KeyValueStore(Protocol):
    """What a Transaction needs from a backend; the Rocks and memory stores share one contract suite."""

    def get(self, key: bytes) -> bytes | None: ...
    def write(self, puts: dict[bytes, bytes | None], objects: dict[bytes, object] | None = None) -> None:
        """Write ``puts`` atomically; ``objects`` are the decoded forms of some of those values (lazy
        writes), which ``committed_object`` may hand out instead of the bytes."""
    def committed_object(self, key: bytes) -> object | None:
        """The object whose encoding is the value at ``key``, if the store still remembers it."""
    def scan(self, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]: ...
    def close(self) -> None: ...


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key above every key that starts with ``prefix`` (None: there is none)."""
    head = prefix.rstrip(b"\xff")
    return head[:-1] + bytes([head[-1] + 1]) if head else None


class Transaction:
    """The writes of one batch, buffered over a store; reads see them."""

    def __init__(self, store: KeyValueStore) -> None:
        self._store = store
        self._writes: dict[bytes, bytes | Lazy | None] = {}  # None: deleted
        self._undo: dict[bytes, bytes | Lazy | None | object] | None = None  # ABSENT: not written before
        # The written keys by table (their first 3 bytes), built by scans as they need it: a scan
        # looks at its table's writes only, not at every write of the batch (_written_under). A
        # batch of 1,000 virtual-object calls, each popping its key's inbox: 516k -> 200k
        # instructions a record (callgrind, apply_loop.py --keys 100); batches of 10: unchanged.
        self._tables: dict[bytes, list[bytes]] = {}
        self._indexed = 0  # how many of _writes' keys (in insertion order) _tables holds

    def get(self, key: bytes) -> bytes | None:
        if key in self._writes:
            value = self._writes[key]
            return value.encode(value.obj) if isinstance(value, Lazy) else value
        return self._store.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        if self._undo is not None and key not in self._undo:  # _remember, inlined: the hottest call in apply
            self._undo[key] = self._writes.get(key, ABSENT)
        self._writes[key] = value

    def put_lazy(self, key: bytes, obj: object, encode: Callable[[object], bytes]) -> None:
        """Write ``obj``; ``encode(obj)`` makes its bytes at commit. ``obj`` must not change afterwards."""
        if self._undo is not None and key not in self._undo:
            self._undo[key] = self._writes.get(key, ABSENT)
        self._writes[key] = Lazy(obj, encode)

    def object_at(self, key: bytes) -> object | None:
        """The object written lazily at ``key``, by this transaction or (committed) by an earlier one
        the store remembers; None if there is none (or bytes were written since): read the bytes.
        The object is shared: copy before changing it."""
        if key in self._writes:
            value = self._writes[key]
            return value.obj if isinstance(value, Lazy) else None
        return self._store.committed_object(key)

    def delete(self, key: bytes) -> None:
        self._remember(key)
        self._writes[key] = None

    def _remember(self, key: bytes) -> None:
        if self._undo is not None and key not in self._undo:
            self._undo[key] = self._writes.get(key, ABSENT)

    def savepoint(self) -> None:
        """Start recording what the next record changes, so a failing record can be undone alone."""
        self._undo = {}

    def rollback(self) -> None:
        """Undo every write since the savepoint."""
        for key, previous in (self._undo or {}).items():
            if previous is ABSENT:
                self._writes.pop(key, None)
                self._forget_index()  # keys left _writes: positions in it moved
            else:
                self._writes[key] = cast(bytes | Lazy | None, previous)
        self._undo = {}

    def _forget_index(self) -> None:
        self._tables = {}
        self._indexed = 0

    def _written_under(self, prefix: bytes) -> Iterable[bytes]:
        """The keys this transaction wrote that may start with ``prefix`` (a superset).

        Keys only ever join ``_writes`` at its end (a write to a key already there keeps its place;
        a delete is a None value), so the index catches up by reading the keys added since it last
        looked. Under 3 bytes of prefix: every key."""
        if len(prefix) < 3:
            return self._writes
        if self._indexed < len(self._writes):
            tables = self._tables
            for k in itertools.islice(self._writes, self._indexed, None):
                table = tables.get(k[:3])
                if table is None:
                    tables[k[:3]] = [k]
                else:
                    table.append(k)
            self._indexed = len(self._writes)
        return self._tables.get(prefix[:3], ())

    def scan(self, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Store rows under ``prefix`` (from ``start`` on) merged with this transaction's writes, in key order."""
        merged = dict(self._store.scan(prefix, start))
        writes = self._writes
        for k in self._written_under(prefix):
            if k.startswith(prefix) and (start is None or k >= start):
                v = writes[k]
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v.encode(v.obj) if isinstance(v, Lazy) else v
        return iter(sorted(merged.items()))

    def scan_below(self, prefix: bytes, stop: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """The first ``limit`` rows under ``prefix`` with keys below ``stop``, merged with this
        transaction's writes. Reads the store lazily: a long index costs only what is taken."""
        pending = {k: self._writes[k] for k in self._written_under(prefix) if k.startswith(prefix) and k < stop}
        rows: dict[bytes, bytes] = {}
        for k, v in self._store.scan(prefix):
            if k >= stop or len(rows) >= limit + len(pending):
                break
            rows[k] = v
        for k, w in pending.items():
            if w is None:
                rows.pop(k, None)
            else:
                rows[k] = w.encode(w.obj) if isinstance(w, Lazy) else w
        return sorted(rows.items())[:limit]

    def commit(self, applied_offset: int | None, mark_ms: int | None = None) -> dict[bytes, bytes | None]:
        """One atomic write: the batch's effects and the offset they bring the partition to, with
        ``mark_ms`` (the timestamp of the log record at that offset), by which a start tells whether
        the log still holds the record the store saw there (partitions/state/log_match.py).
        Returns what it wrote (value None: deleted): the batch's changelog delta."""
        if applied_offset is not None:
            self._writes[APPLIED_OFFSET] = (b"%d" % applied_offset if mark_ms is None
                                            else b"%d@%d" % (applied_offset, mark_ms))
        objects: dict[bytes, object] = {}
        for k, v in self._writes.items():
            if isinstance(v, Lazy):
                objects[k] = v.obj
                self._writes[k] = v.encode(v.obj)
        written = cast(dict[bytes, bytes | None], self._writes)  # every Lazy encoded above
        if written:
            self._store.write(written, objects)
        self._writes = {}
        self._forget_index()
        return written


def applied_offset(store: KeyValueStore) -> int:
    """The last offset applied to this store, or -1 for a fresh one."""
    raw = store.get(APPLIED_OFFSET)
    return int(raw.partition(b"@")[0]) if raw is not None else -1


def applied_mark(store: KeyValueStore) -> int | None:
    """The timestamp of the log record at the store's applied offset, if the store recorded it."""
    raw = store.get(APPLIED_OFFSET)
    mark = raw.partition(b"@")[2] if raw is not None else b""
    return int(mark) if mark else None
