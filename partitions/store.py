"""A partition's materialized state: RocksDB (rocksdict) in production, a dict twin for unit tests.

apply() works on a ``Transaction``: reads see the transaction's own writes, and ``commit`` turns
every write of a consumed batch plus the applied offset into one atomic RocksDB WriteBatch
(ARCHITECTURE invariant 3). The WAL is on and sync is off: Kafka is the durability layer, and a lost
tail of writes is re-applied from the log because the applied offset was lost with them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NoReturn, Protocol

from rocksdict import (
    BlockBasedOptions,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteBufferManager,
    WriteOptions,
)

APPLIED_OFFSET = b"meta/applied_offset"
_DELETED = object()

# Memtables. RocksDB's default is two of 64 MB per database, and every partition is a database of
# its own: the engine's RSS grew 216 -> 502 MB over a make bench run on 8 partitions, and a process
# owning 24 could hold 3 GB of memtables. As in Kafka Streams' stores: 16 MB memtables, and one
# budget per process (``bound_memtables``) that all its stores' memtables share: past it, the store
# being written flushes its memtable. Smaller memtables are also cheaper to insert into (a skip list
# a quarter the size: 23-key writes 58 -> 43 us measured, docs/benchmarks.md, seventeenth session).
WRITE_BUFFER_BYTES = 16 << 20
_memtable_budget: WriteBufferManager | None = None


def bound_memtables(total_bytes: int) -> WriteBufferManager | None:
    """Let the stores this process opens from now on share ``total_bytes`` of memtables (0: no bound
    but each store's own); returns the budget. Never stalls a write: past it, flushes are triggered."""
    global _memtable_budget
    _memtable_budget = WriteBufferManager(total_bytes, False) if total_bytes > 0 else None
    return _memtable_budget


class StoreIOError(Exception):
    """The store failed, not the caller: an I/O error, corruption.

    rocksdict reports these as a bare ``Exception``, which cannot be told apart from a bug's bare
    ``Exception`` once it has left the store. The RocksDB store turns them
    into this type where it calls rocksdict, so a failed apply is retried for this type only
    (partitions/apply_failures.py) and a record's own failure is never mistaken for one."""


def _raise_store_error(e: Exception) -> NoReturn:
    """Raise ``e`` as a StoreIOError if it is rocksdict's bare ``Exception``; else ``e`` itself
    (a TypeError of a wrong argument is the caller's bug; a ``DbClosedError`` says the partition
    moved away, which callers recognise by that type)."""
    if type(e) is Exception:
        raise StoreIOError(f"RocksDB: {e}") from e
    raise e


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


class MemoryStore:
    """The in-memory twin, for unit tests of the pure core only."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.objects: dict[bytes, object] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def write(self, puts: dict[bytes, bytes | None], objects: dict[bytes, object] | None = None) -> None:
        for k, v in puts.items():
            self.objects.pop(k, None)
            if v is None:
                self.data.pop(k, None)
            else:
                self.data[k] = v
        self.objects.update(objects or {})

    def committed_object(self, key: bytes) -> object | None:
        return self.objects.get(key)

    def scan(self, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Rows under ``prefix`` in key order, from ``start`` (inclusive) if given."""
        for k in sorted(self.data):
            if k.startswith(prefix) and (start is None or k >= start):
                yield k, self.data[k]

    def close(self) -> None:
        pass


class RocksStore:
    """One RocksDB per partition, with the values of its latest writes kept in memory.

    Why the write-through cache: what a batch writes is read again at once by the leader acting on
    it (the invoker reads the status row and journal of the attempt it starts, the shipper the outbox
    entry), and a RocksDB read through rocksdict holds the GIL. Writes go to RocksDB first, then to
    the cache, so a reader on another thread sees either the value before the batch or after it.
    """

    RECENT = 8192  # cached values; trimmed to half when exceeded
    # Remembered rows: enough for the invocations a processor has in flight (the invoker runs up to
    # 512 at once); each row is a dozen objects the garbage collector walks on a full collection, which
    # engine/gc_policy.py makes rare. (1,024 was tried: docs/benchmarks.md, ninth session.)
    OBJECTS = 2048

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        # Bloom filters: every new invocation looks up an id that is not there (is it a duplicate?);
        # without them a miss reads an index block per overlapping file (8.7 µs vs 3.4 µs measured
        # on 500k random ids in six files; docs/benchmarks.md, sixth session)
        table = BlockBasedOptions()
        table.set_bloom_filter(10, False)
        opts.set_block_based_table_factory(table)
        opts.set_write_buffer_size(WRITE_BUFFER_BYTES)
        if _memtable_budget is not None:
            opts.set_write_buffer_manager(_memtable_budget)
        self._db = Rdict(str(path), options=opts)
        self._wopts = WriteOptions()
        self._wopts.sync = False
        self._bulk_wopts = WriteOptions()
        self._bulk_wopts.disable_wal = True
        self._bulk_unflushed = False  # WAL-less writes sit in the memtables: flush before a WAL'd write
        self._recent: dict[bytes, bytes | None] = {}
        # The decoded rows of the latest lazy writes (invocation status): the next batch's records
        # about the same invocations start from them instead of decoding Avro again.
        self._objects: dict[bytes, object] = {}

    @property
    def db(self) -> Rdict:
        return self._db

    def get(self, key: bytes) -> bytes | None:
        value = self._recent.get(key, _DELETED)
        if value is not _DELETED:
            return value  # type: ignore[return-value]
        try:  # free when nothing raises (zero-cost exceptions, CPython 3.11+)
            return self._db.get(key)
        except Exception as e:
            _raise_store_error(e)

    def write(self, puts: dict[bytes, bytes | None], objects: dict[bytes, object] | None = None) -> None:
        if self._bulk_unflushed:  # else a crash could keep this write (WAL) and lose the ones before it
            self.flush()
        try:
            self._db.write(_write_batch(puts.items()), self._wopts)
        except Exception as e:
            _raise_store_error(e)
        recent = self._recent
        recent.update(puts)
        remembered = self._objects
        for k in puts.keys() & remembered.keys():  # values replaced: their old objects are stale
            del remembered[k]
        if objects:
            remembered.update(objects)
        for cache, bound in ((recent, self.RECENT), (remembered, self.OBJECTS)):
            if len(cache) > bound:
                for k in list(itertools.islice(cache, len(cache) - bound // 2)):
                    cache.pop(k, None)

    def committed_object(self, key: bytes) -> object | None:
        return self._objects.get(key)

    def write_restored(self, writes: dict[bytes, bytes | None]) -> None:
        """Write a changelog restore's writes (value None: delete), bypassing the WAL. Each call is
        one WriteBatch holding whole deltas and the applied offset they end at; a crash loses whole
        batches from the end (one column family: memtables flush whole and in order), so the store
        is at some earlier applied offset with exactly that offset's rows, and the restore writes the
        rest again. Safe only while every later write also bypasses the WAL: a WAL'd write replayed
        after a crash would carry a later applied offset over the lost rows, so ``write`` flushes
        first (and ``flush`` makes them durable). The caches forget all."""
        # in key order the memtable inserts cost a quarter (measured)
        try:
            self._db.write(_write_batch(sorted(writes.items())), self._bulk_wopts)
        except Exception as e:
            _raise_store_error(e)
        self._bulk_unflushed = True
        self._recent.clear()
        self._objects.clear()

    def flush(self) -> None:
        """Persist the memtables (after writes that bypassed the WAL)."""
        try:
            self._db.flush()
        except Exception as e:
            _raise_store_error(e)
        self._bulk_unflushed = False

    def scan(self, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        try:
            yield from self._scan(prefix, start)
        except Exception as e:
            _raise_store_error(e)

    def _scan(self, prefix: bytes, start: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        # Bounded at the prefix's end: unbounded, the step past the last row walks every deleted key
        # that follows until a live one (the tombstones of finished invocations, until compaction
        # drops them): 183 µs a scan behind 5,000 deleted promise waiters, 2.5 µs bounded
        # (docs/benchmarks.md, thirteenth session)
        bound = prefix_end(prefix)
        if bound is None:
            it = self._db.iter()
        else:
            bounded = ReadOptions()
            bounded.set_iterate_upper_bound(bound)
            it = self._db.iter(bounded)
        it.seek(max(prefix, start) if start is not None else prefix)
        while it.valid():
            k = it.key()
            if not k.startswith(prefix):
                break
            yield k, it.value()
            it.next()
        del it

    def close(self) -> None:
        self._db.close()


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key above every key that starts with ``prefix`` (None: there is none)."""
    head = prefix.rstrip(b"\xff")
    return head[:-1] + bytes([head[-1] + 1]) if head else None


def _write_batch(writes: Iterable[tuple[bytes, bytes | None]]) -> WriteBatch:
    """A RocksDB WriteBatch of ``writes`` in their order (value None: delete)."""
    wb = WriteBatch(raw_mode=True)
    for k, v in writes:
        if v is None:
            wb.delete(k)
        else:
            wb.put(k, v)
    return wb


class Transaction:
    """The writes of one batch, buffered over a store; reads see them."""

    def __init__(self, store: KeyValueStore) -> None:
        self._store = store
        self._writes: dict[bytes, bytes | None] = {}
        self._undo: dict[bytes, object] | None = None
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
            self._undo[key] = self._writes.get(key, _DELETED)
        self._writes[key] = value

    def put_lazy(self, key: bytes, obj: object, encode: Callable[[object], bytes]) -> None:
        """Write ``obj``; ``encode(obj)`` makes its bytes at commit. ``obj`` must not change afterwards."""
        if self._undo is not None and key not in self._undo:
            self._undo[key] = self._writes.get(key, _DELETED)
        self._writes[key] = Lazy(obj, encode)  # type: ignore[assignment]

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
            self._undo[key] = self._writes.get(key, _DELETED)

    def savepoint(self) -> None:
        """Start recording what the next record changes, so a failing record can be undone alone."""
        self._undo = {}

    def rollback(self) -> None:
        """Undo every write since the savepoint."""
        for key, previous in (self._undo or {}).items():
            if previous is _DELETED:
                self._writes.pop(key, None)
                self._forget_index()  # keys left _writes: positions in it moved
            else:
                self._writes[key] = previous  # type: ignore[assignment]
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
        for k, v in pending.items():
            if v is None:
                rows.pop(k, None)
            else:
                rows[k] = v.encode(v.obj) if isinstance(v, Lazy) else v
        return sorted(rows.items())[:limit]

    def commit(self, applied_offset: int | None, mark_ms: int | None = None) -> dict[bytes, bytes | None]:
        """One atomic write: the batch's effects and the offset they bring the partition to, with
        ``mark_ms`` (the timestamp of the log record at that offset), by which a start tells whether
        the log still holds the record the store saw there (partitions/log_match.py).
        Returns what it wrote (value None: deleted): the batch's changelog delta."""
        if applied_offset is not None:
            self._writes[APPLIED_OFFSET] = (b"%d" % applied_offset if mark_ms is None
                                            else b"%d@%d" % (applied_offset, mark_ms))
        objects = {}
        for k, v in self._writes.items():
            if isinstance(v, Lazy):
                objects[k] = v.obj
                self._writes[k] = v.encode(v.obj)
        written = self._writes
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
