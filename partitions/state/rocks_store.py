"""A partition's materialized state in RocksDB (rocksdict): one database per partition.

apply() works on a ``Transaction`` (partitions/core/transaction.py), whose ``commit`` becomes one
atomic RocksDB WriteBatch here: every write of a consumed batch plus the applied offset. The WAL is
on and sync is off: Kafka is the durability layer, and a lost tail of writes is re-applied from the
log because the applied offset was lost with them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NoReturn

from rocksdict import BlockBasedOptions, Options, Rdict, ReadOptions, WriteBatch, WriteBufferManager, WriteOptions

from reprise.partitions.core.transaction import ABSENT, StoreIOError, prefix_end

# Memtables. RocksDB's default is two of 64 MB per database, and every partition is a database of
# its own: the engine's RSS grew 216 -> 502 MB over a make bench run on 8 partitions, and a process
# owning 24 could hold 3 GB of memtables. As in Kafka Streams' stores: 16 MB memtables, and one
# budget per process (``bound_memtables``) that all its stores' memtables share: past it, the store
# being written flushes its memtable. Smaller memtables are also cheaper to insert into (a skip list
# a quarter the size: 23-key writes 58 -> 43 us measured, docs/benchmarks.md, "RocksDB settings").
WRITE_BUFFER_BYTES = 16 << 20
_memtable_budget: WriteBufferManager | None = None


def bound_memtables(total_bytes: int) -> WriteBufferManager | None:
    """Let the stores this process opens from now on share ``total_bytes`` of memtables (0: no bound
    but each store's own); returns the budget. Never stalls a write: past it, flushes are triggered."""
    global _memtable_budget
    _memtable_budget = WriteBufferManager(total_bytes, False) if total_bytes > 0 else None
    return _memtable_budget


class StoreLocked(RuntimeError):
    """The store is open in another process (RocksDB allows one): a running processor, most likely."""


def _raise_store_error(e: Exception) -> NoReturn:
    """Raise ``e`` as a StoreIOError if it is rocksdict's bare ``Exception``; else ``e`` itself
    (a TypeError of a wrong argument is the caller's bug; a ``DbClosedError`` says the partition
    moved away, which callers recognise by that type)."""
    if type(e) is Exception:
        raise StoreIOError(f"RocksDB: {e}") from e
    raise e


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
    # engine/gc_policy.py makes rare. (1,024 was tried: docs/benchmarks.md, "RocksDB settings".)
    OBJECTS = 2048

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        # Bloom filters: every new invocation looks up an id that is not there (is it a duplicate?);
        # without them a miss reads an index block per overlapping file (8.7 µs vs 3.4 µs measured
        # on 500k random ids in six files; docs/benchmarks.md, "RocksDB settings")
        table = BlockBasedOptions()
        table.set_bloom_filter(10, False)
        opts.set_block_based_table_factory(table)
        opts.set_write_buffer_size(WRITE_BUFFER_BYTES)
        if _memtable_budget is not None:
            opts.set_write_buffer_manager(_memtable_budget)
        try:
            self._db = Rdict(str(path), options=opts)
        except Exception as e:
            if "lock" in str(e).lower():
                raise StoreLocked(f"the store {path} is open in another process (a processor running on this "
                                  "home?): stop it first") from None
            _raise_store_error(e)
        self._wopts = WriteOptions()
        self._wopts.sync = False
        self._bulk_wopts = WriteOptions()
        self._bulk_wopts.disable_wal = True  # type: ignore[method-assign,assignment]  # a property; rocksdict's stub says a method
        self._bulk_unflushed = False  # WAL-less writes sit in the memtables: flush before a WAL'd write
        self._recent: dict[bytes, bytes | None] = {}
        # The decoded rows of the latest lazy writes (invocation status): the next batch's records
        # about the same invocations start from them instead of decoding Avro again.
        self._objects: dict[bytes, object] = {}

    @property
    def db(self) -> Rdict:
        return self._db

    def get(self, key: bytes) -> bytes | None:
        value = self._recent.get(key, ABSENT)
        if value is not ABSENT:
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
        # (docs/benchmarks.md, "RocksDB settings")
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

    def count(self, prefix: bytes, limit: int, start: bytes | None = None) -> tuple[int, bytes | None]:
        """Rows of ``prefix`` from ``start`` on, counted up to ``limit`` (keys only; for metrics), and
        the key to go on from (None: the prefix has no more)."""
        bounded = ReadOptions()
        bound = prefix_end(prefix)
        if bound is not None:
            bounded.set_iterate_upper_bound(bound)
        try:
            it = self._db.iter(bounded)
            it.seek(max(prefix, start) if start is not None else prefix)
            n = 0
            while n < limit and it.valid() and it.key().startswith(prefix):
                n += 1
                it.next()
            rest = it.key() if it.valid() and it.key().startswith(prefix) else None
            del it
            return n, rest
        except Exception as e:
            _raise_store_error(e)

    def size_estimates(self) -> dict[str, int]:
        """RocksDB's own estimates of the store's size, by what they measure (for metrics)."""
        return {name: self._db.property_int_value(prop) or 0 for name, prop in _SIZE_PROPERTIES}

    def close(self) -> None:
        self._db.close()


# (metric label, RocksDB property): what the processor reports of each store's size
_SIZE_PROPERTIES = (("live_data_bytes", "rocksdb.estimate-live-data-size"),
                    ("sst_bytes", "rocksdb.total-sst-files-size"),
                    ("memtable_bytes", "rocksdb.cur-size-all-mem-tables"),
                    ("keys", "rocksdb.estimate-num-keys"))


def _write_batch(writes: Iterable[tuple[bytes, bytes | None]]) -> WriteBatch:
    """A RocksDB WriteBatch of ``writes`` in their order (value None: delete)."""
    wb = WriteBatch(raw_mode=True)
    for k, v in writes:
        if v is None:
            wb.delete(k)
        else:
            wb.put(k, v)
    return wb
