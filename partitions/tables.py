"""Typed access to a partition's tables, all in one keyspace with a prefix per table.

| prefix | key | value |
|---|---|---|
| ``in/`` | invocation id | InvocationStatus (Avro) |
| ``jn/`` | invocation id / index (10 digits) | a journal entry: one framed protocol message |
| ``st/`` | len:service len:object key / state key | user state bytes |
| ``tm/`` | fire time (15 digits) / timer id | Timer (Avro) |
| ``ob/`` | sequence (20 digits) | OutboxEntry (Avro) |
| ``rn/`` | invocation id | empty: index of INVOKED invocations, for a new leader |
| ``lk/`` | len:service len:object key | the invocation holding the key's exclusive lock |
| ``pm/`` | len:service len:workflow id / promise name | b"V" + value, or b"F" + Failure (Avro) |
| ``pw/`` | len:service len:workflow id / promise name / invocation / completion id | empty: a waiter |
| ``ib/`` | len:service len:object key / sequence (20 digits) | an invocation waiting for the key, in arrival order |
| ``ih/`` | len:service len:object key | the ``ib/`` key taken last from the object's inbox (the next pop seeks there) |
| ``dd/`` | source partition | highest outbox sequence received from it |
| ``is/`` | invocation id | its status name: lets a status change adjust the counts without a decode |
| ``meta/`` | epoch, outbox_next, outbox_head, applied_offset, count/<status>, inbox_depth | integers as ASCII |

``meta/applied_offset`` is ``<offset>@<timestamp of the record there>`` (partitions/log_match.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from partitions.store import Transaction
from schemas import codec

Row = dict[str, Any]


def _int(raw: bytes | None, default: int) -> int:
    return int(raw) if raw is not None else default


def _encode_status(row: object) -> bytes:
    return codec.encode_stored("InvocationStatus", row)  # type: ignore[arg-type]


_UNREAD = object()
# A row's lists that apply() changes in place (append_entry, attach); the rest are replaced whole.
_LISTS_CHANGED_IN_PLACE = ("completed_ids", "signal_ids", "named_signals", "attached_callers", "attached_replies")


def _private_copy(row: Row) -> Row:
    """A row a record may change without touching ``row``: the object a pending write (or a record
    rolled back to it) will encode. A shallow copy would share its lists."""
    copy = dict(row)
    for name in _LISTS_CHANGED_IN_PLACE:
        copy[name] = list(copy[name])
    return copy


class Tables:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        # invocation id -> its stored status name (None: no such invocation), as status() last read it:
        # put_status then needs no read of is/ (for a new invocation, a RocksDB miss)
        self._read_status: dict[str, str | None] = {}
        self._epoch: int | None = None  # read once per batch: every leader-made record checks it
        self._outbox_next: int | None = None  # read once per batch: replies append, OutboxShipped checks it

    def forget_reads(self) -> None:
        """Drop what was remembered from reads: the transaction was rolled back to a savepoint."""
        self._read_status.clear()
        self._epoch = None
        self._outbox_next = None

    # invocation status
    def status(self, inv: str) -> Row | None:
        key = b"in/" + inv.encode()
        written = self.tx.object_at(key)
        if written is not None:  # written in this batch or a recent one: no Avro decode
            row = _private_copy(written)  # type: ignore[arg-type]
        else:
            raw = self.tx.get(key)
            row = codec.decode_stored("InvocationStatus", raw) if raw is not None else None
        self._read_status[inv] = row["status"] if row is not None else None
        return row

    def put_status(self, row: Row) -> None:
        inv_text = row["invocation_id"]
        inv = inv_text.encode()
        self.tx.put_lazy(b"in/" + inv, dict(row), _encode_status)
        status = row["status"].encode()
        read = self._read_status.pop(inv_text, _UNREAD)
        old = self.tx.get(b"is/" + inv) if read is _UNREAD else (read.encode() if read is not None else None)
        if old != status:
            self.tx.put(b"is/" + inv, status)
            self._count(b"meta/count/" + status, 1)
            if old is not None:
                self._count(b"meta/count/" + old, -1)
            if status == b"INVOKED":  # rn/ lists exactly the INVOKED rows (resumed on leadership)
                self.tx.put(b"rn/" + inv, b"")
            elif old == b"INVOKED":
                self.tx.delete(b"rn/" + inv)

    def _count(self, key: bytes, delta: int) -> None:
        self.tx.put(key, str(_int(self.tx.get(key), 0) + delta).encode())

    def status_counts(self) -> dict[str, int]:
        """How many invocations this partition holds, by status (kept as they change, not counted)."""
        return {k[len(b"meta/count/"):].decode(): int(v) for k, v in self.tx.scan(b"meta/count/")}

    def inbox_depth(self) -> int:
        """Invocations waiting behind an object's lock, over all keys of the partition."""
        return _int(self.tx.get(b"meta/inbox_depth"), 0)

    def invoked_ids(self) -> Iterator[str]:
        for k, _ in self.tx.scan(b"rn/"):
            yield k[3:].decode()

    # journal
    def entry(self, inv: str, index: int) -> bytes | None:
        return self.tx.get(b"jn/%s/%010d" % (inv.encode(), index))

    def put_entry(self, inv: str, index: int, frame: bytes) -> None:
        self.tx.put(b"jn/%s/%010d" % (inv.encode(), index), frame)

    def journal(self, inv: str, length: int) -> list[bytes]:
        out = []
        for i in range(length):
            e = self.entry(inv, i)
            if e is None:
                raise KeyError(f"journal of {inv}: expected entry {i} of {length}, found none")
            out.append(e)
        return out

    # user state
    @staticmethod
    def _state_prefix(service: str, key: str) -> bytes:
        return b"st/" + Tables._object(service, key) + b"/"

    def state(self, service: str, key: str) -> list[tuple[bytes, bytes]]:
        prefix = self._state_prefix(service, key)
        return [(k[len(prefix):], v) for k, v in self.tx.scan(prefix)]

    def set_state(self, service: str, key: str, name: bytes, value: bytes) -> None:
        self.tx.put(self._state_prefix(service, key) + name, value)

    def clear_state(self, service: str, key: str, name: bytes) -> None:
        self.tx.delete(self._state_prefix(service, key) + name)

    def clear_all_state(self, service: str, key: str) -> None:
        for k, _ in self.tx.scan(self._state_prefix(service, key)):
            self.tx.delete(k)

    # virtual object keys: the exclusive lock and the inbox behind it
    @staticmethod
    def _object(service: str, key: str) -> bytes:
        """Length-prefixed, so keys containing '/' cannot collide with one another."""
        s, k = service.encode(), key.encode()
        return b"%d:%s%d:%s" % (len(s), s, len(k), k)

    def lock_holder(self, service: str, key: str) -> str | None:
        raw = self.tx.get(b"lk/" + self._object(service, key))
        return raw.decode() if raw is not None else None

    def set_lock(self, service: str, key: str, inv: str | None) -> None:
        if inv is None:
            self.tx.delete(b"lk/" + self._object(service, key))
        else:
            self.tx.put(b"lk/" + self._object(service, key), inv.encode())

    def inbox_push(self, service: str, key: str, inv: str) -> None:
        seq = _int(self.tx.get(b"meta/inbox_next"), 0)
        self.tx.put(b"meta/inbox_next", str(seq + 1).encode())
        self.tx.put(b"ib/%s/%020d" % (self._object(service, key), seq), inv.encode())
        self._count(b"meta/inbox_depth", 1)

    def inbox_pop(self, service: str, key: str) -> str | None:
        """The oldest invocation waiting for the key, removed from the inbox.

        The scan starts at the entry taken last: from the prefix's start it would walk the deleted
        entries of every earlier invocation of the key (RocksDB keeps them as tombstones until
        compaction), 69 µs a pop at first and 430 µs after 5,000 on one hot key (measured).
        A store without the ``ih/`` row (older, or the key's first pop) scans from the start."""
        obj = self._object(service, key)
        head = self.tx.get(b"ih/" + obj)
        for k, v in self.tx.scan(b"ib/%s/" % obj, head):
            self.tx.put(b"ih/" + obj, k)
            self.tx.delete(k)
            self._count(b"meta/inbox_depth", -1)
            return v.decode()
        return None

    def inbox(self, service: str, key: str) -> list[str]:
        return [v.decode() for _, v in self.tx.scan(b"ib/%s/" % self._object(service, key))]

    def state_get(self, service: str, key: str, name: bytes) -> bytes | None:
        return self.tx.get(self._state_prefix(service, key) + name)

    # durable promises (workflows)
    def promise(self, service: str, key: str, name: str) -> tuple[bytes | None, Row | None] | None:
        """(value, None) or (None, failure) once completed; None while pending."""
        raw = self.tx.get(b"pm/" + self._object(service, key) + b"/" + name.encode())
        if raw is None:
            return None
        if raw[:1] == b"V":
            return raw[1:], None
        return None, codec.decode("Failure", 1, raw[1:])

    def complete_promise(self, service: str, key: str, name: str, value: bytes | None, failure: Row | None) -> None:
        body = b"V" + (value or b"") if failure is None else b"F" + codec.encode("Failure", failure)
        self.tx.put(b"pm/" + self._object(service, key) + b"/" + name.encode(), body)

    def add_promise_waiter(self, service: str, key: str, name: str, inv: str, completion_id: int) -> None:
        self.tx.put(b"pw/%s/%s/%s/%d" % (self._object(service, key), name.encode(), inv.encode(), completion_id), b"")

    def take_promise_waiters(self, service: str, key: str, name: str) -> list[tuple[str, int]]:
        prefix = b"pw/%s/%s/" % (self._object(service, key), name.encode())
        out = []
        for k, _ in self.tx.scan(prefix):
            inv, cid = k[len(prefix):].rsplit(b"/", 1)
            out.append((inv.decode(), int(cid)))
            self.tx.delete(k)
        return out

    def clear_promises(self, service: str, key: str) -> None:
        for prefix in (b"pm/", b"pw/"):
            for k, _ in self.tx.scan(prefix + self._object(service, key) + b"/"):
                self.tx.delete(k)

    def inbox_remove(self, service: str, key: str, inv: str) -> None:
        for k, v in self.tx.scan(b"ib/%s/" % self._object(service, key)):
            if v.decode() == inv:
                self.tx.delete(k)
                self._count(b"meta/inbox_depth", -1)

    def delete_journal(self, inv: str, length: int) -> None:
        for i in range(length):
            self.tx.delete(b"jn/%s/%010d" % (inv.encode(), i))

    def delete_status(self, inv: str) -> None:
        key = inv.encode()
        self._read_status.pop(inv, None)
        self.tx.delete(b"in/" + key)
        self.tx.delete(b"rn/" + key)
        old = self.tx.get(b"is/" + key)
        if old is not None:
            self.tx.delete(b"is/" + key)
            self._count(b"meta/count/" + old, -1)

    # retention of completed plain invocations (apply/retention_sweep.py)
    def index_completed(self, inv: str, completed_ms: int) -> None:
        self.tx.put(b"cr/%015d/%s" % (completed_ms, inv.encode()), b"")

    def completed_before(self, before_ms: int, limit: int) -> list[tuple[bytes, str]]:
        """(index key, invocation id) of up to ``limit`` completions older than ``before_ms``, oldest first."""
        rows = self.tx.scan_below(b"cr/", b"cr/%015d" % before_ms, limit)
        return [(k, k[19:].decode()) for k, _ in rows]

    def unindex_completed(self, index_key: bytes) -> None:
        self.tx.delete(index_key)

    # timers
    @staticmethod
    def timer_key(fire_at_ms: int, timer_id: str) -> str:
        return f"tm/{fire_at_ms:015d}/{timer_id}"

    def put_timer(self, timer_key: str, row: Row) -> None:
        self.tx.put(timer_key.encode(), codec.encode_stored("Timer", row))

    def timer(self, timer_key: str) -> Row | None:
        raw = self.tx.get(timer_key.encode())
        return codec.decode_stored("Timer", raw) if raw is not None else None

    def delete_timer(self, timer_key: str) -> None:
        self.tx.delete(timer_key.encode())

    def timers(self) -> Iterator[tuple[str, Row]]:
        for k, v in self.tx.scan(b"tm/"):
            yield k.decode(), codec.decode_stored("Timer", v)

    # outbox
    def outbox_append(self, topic: str, partition: int, kind: str, encode: Callable[[int], bytes]) -> int:
        """Store the next outbox entry; ``encode(seq)`` builds its body, which carries its own seq."""
        seq = self.outbox_next()
        self._outbox_next = seq + 1
        self.tx.put(b"meta/outbox_next", str(seq + 1).encode())
        row = {"seq": seq, "topic": topic, "partition": partition, "kind": kind, "value": encode(seq)}
        self.tx.put(b"ob/%020d" % seq, codec.encode_stored("OutboxEntry", row))
        return seq

    def outbox_next(self) -> int:
        """The sequence the next outbox entry gets: every entry ever written is below it."""
        if self._outbox_next is None:
            self._outbox_next = _int(self.tx.get(b"meta/outbox_next"), 0)
        return self._outbox_next

    def outbox_entry(self, seq: int) -> Row | None:
        raw = self.tx.get(b"ob/%020d" % seq)
        return codec.decode_stored("OutboxEntry", raw) if raw is not None else None

    def outbox_truncate(self, up_to: int) -> None:
        head = _int(self.tx.get(b"meta/outbox_head"), 0)
        for seq in range(head, up_to + 1):
            self.tx.delete(b"ob/%020d" % seq)
        if up_to + 1 > head:
            self.tx.put(b"meta/outbox_head", str(up_to + 1).encode())

    def outbox_pending(self) -> list[int]:
        """Entries not shipped yet: from the head on. Every entry below it was deleted, and seeking
        to it skips their tombstones (a new leader's scan would walk every entry ever shipped)."""
        head = _int(self.tx.get(b"meta/outbox_head"), 0)
        return [int(k[3:]) for k, _ in self.tx.scan(b"ob/", b"ob/%020d" % head)]

    # duplicate suppression for records from other partitions
    def seen(self, source_partition: int, seq: int) -> bool:
        """True if (partition, seq) was applied before; otherwise remember it."""
        key = b"dd/%d" % source_partition
        if seq <= _int(self.tx.get(key), -1):
            return True
        self.tx.put(key, str(seq).encode())
        return False

    # leadership
    def epoch(self) -> int:
        if self._epoch is None:
            self._epoch = _int(self.tx.get(b"meta/epoch"), 0)
        return self._epoch

    def set_epoch(self, epoch: int, owner: str) -> None:
        self._epoch = epoch
        self.tx.put(b"meta/epoch", str(epoch).encode())
        self.tx.put(b"meta/epoch_owner", owner.encode())

    def epoch_owner(self) -> str | None:
        raw = self.tx.get(b"meta/epoch_owner")
        return raw.decode() if raw is not None else None
