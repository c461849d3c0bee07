"""A partition's tables, all in one keyspace with a prefix per table; one class per table.

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
| ``ib/`` | len:service len:object key / sequence (20 digits) | an invocation (or an ``sm/`` key) waiting |
| ``ih/`` | len:service len:object key | the ``ib/`` key taken last from the object's inbox (the next pop seeks there) |
| ``sm/`` | sequence (20 digits) | a state mutation waiting in an object's inbox (``state_mutations.py``) |
| ``cr/`` | completion time (15 digits) / invocation id | empty: completed plain invocations, for retention |
| ``dd/`` | source partition | highest outbox sequence received from it |
| ``is/`` | invocation id | its status name: lets a status change adjust the counts without a decode |
| ``sc/`` | schedule id | Schedule (Avro): a durable cron schedule (``schedules_table.py``) |
| ``meta/`` | epoch, outbox_next, outbox_head, applied_offset, count/<status>, inbox_depth, sm_next | integers |

``meta/applied_offset`` is ``<offset>@<timestamp of the record there>`` (partitions/state/log_match.py).

Each table has a read-only view (``...View``) and, for apply(), a class that also writes.
``TablesView`` gathers the views: what the invoker and introspection read; ``Tables`` the writable
tables: what apply() changes, one Transaction under all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import cast

from reprise.partitions.core.schedules_table import Schedules, SchedulesView
from reprise.partitions.core.transaction import Transaction
from reprise.schemas import codec
from reprise.schemas.records import Failure, InvocationStatus, OutboxEntry, Timer


def _int(raw: bytes | None, default: int) -> int:
    return int(raw) if raw is not None else default


def _count(tx: Transaction, key: bytes, delta: int) -> None:
    tx.put(key, str(_int(tx.get(key), 0) + delta).encode())


def _object(service: str, key: str) -> bytes:
    """A virtual object's key, length-prefixed, so keys containing '/' cannot collide with one another."""
    s, k = service.encode(), key.encode()
    return b"%d:%s%d:%s" % (len(s), s, len(k), k)


def _encode_status(row: object) -> bytes:
    return codec.encode_stored("InvocationStatus", cast(InvocationStatus, row))


_UNREAD = "\0unread"  # compared by identity: no status read yet (None: read, no such invocation)


def _private_copy(row: InvocationStatus) -> InvocationStatus:
    """A row a record may change without touching ``row``: the object a pending write (or a record
    rolled back to it) will encode. A shallow copy would share its lists; these are the lists apply()
    changes in place (append_entry, attach), the rest are replaced whole."""
    copy = row.copy()
    copy["completed_ids"] = list(row["completed_ids"])
    copy["signal_ids"] = list(row["signal_ids"])
    copy["named_signals"] = list(row["named_signals"])
    copy["attached_callers"] = list(row["attached_callers"])
    copy["attached_replies"] = list(row["attached_replies"])
    return copy


class _Table:
    __slots__ = ("tx",)

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx


class InvocationsView(_Table):
    """``in/``, ``is/``, ``rn/`` and the status counts: one row per invocation."""

    __slots__ = ("_read_status",)

    def __init__(self, tx: Transaction) -> None:
        super().__init__(tx)
        # invocation id -> its stored status name (None: no such invocation), as get() last read it:
        # put() then needs no read of is/ (for a new invocation, a RocksDB miss)
        self._read_status: dict[str, str | None] = {}

    def get(self, inv: str) -> InvocationStatus | None:
        key = b"in/" + inv.encode()
        written = self.tx.object_at(key)
        row: InvocationStatus | None
        if written is not None:  # written in this batch or a recent one: no Avro decode
            row = _private_copy(cast(InvocationStatus, written))
        else:
            raw = self.tx.get(key)
            row = cast(InvocationStatus, codec.decode_stored("InvocationStatus", raw)) if raw is not None else None
        self._read_status[inv] = row["status"] if row is not None else None
        return row

    def counts(self) -> dict[str, int]:
        """How many invocations this partition holds, by status (kept as they change, not counted)."""
        return {k[len(b"meta/count/"):].decode(): int(v) for k, v in self.tx.scan(b"meta/count/")}

    def invoked_ids(self) -> Iterator[str]:
        for k, _ in self.tx.scan(b"rn/"):
            yield k[3:].decode()


class Invocations(InvocationsView):
    __slots__ = ()

    def put(self, row: InvocationStatus) -> None:
        inv_text = row["invocation_id"]
        inv = inv_text.encode()
        self.tx.put_lazy(b"in/" + inv, row.copy(), _encode_status)
        status = row["status"].encode()
        read = self._read_status.pop(inv_text, _UNREAD)
        old = self.tx.get(b"is/" + inv) if read is _UNREAD else (read.encode() if read is not None else None)
        if old != status:
            self.tx.put(b"is/" + inv, status)
            _count(self.tx, b"meta/count/" + status, 1)
            if old is not None:
                _count(self.tx, b"meta/count/" + old, -1)
            if status == b"INVOKED":  # rn/ lists exactly the INVOKED rows (resumed on leadership)
                self.tx.put(b"rn/" + inv, b"")
            elif old == b"INVOKED":
                self.tx.delete(b"rn/" + inv)

    def delete(self, inv: str) -> None:
        key = inv.encode()
        self._read_status.pop(inv, None)
        self.tx.delete(b"in/" + key)
        self.tx.delete(b"rn/" + key)
        old = self.tx.get(b"is/" + key)
        if old is not None:
            self.tx.delete(b"is/" + key)
            _count(self.tx, b"meta/count/" + old, -1)

    def forget_reads(self) -> None:
        self._read_status.clear()


class JournalsView(_Table):
    """``jn/``: each invocation's journal, one framed protocol message per entry."""

    __slots__ = ()

    def entry(self, inv: str, index: int) -> bytes | None:
        return self.tx.get(b"jn/%s/%010d" % (inv.encode(), index))

    def read(self, inv: str, length: int) -> list[bytes]:
        out = []
        for i in range(length):
            e = self.entry(inv, i)
            if e is None:
                raise KeyError(f"journal of {inv}: expected entry {i} of {length}, found none")
            out.append(e)
        return out


class Journals(JournalsView):
    __slots__ = ()

    def put(self, inv: str, index: int, frame: bytes) -> None:
        self.tx.put(b"jn/%s/%010d" % (inv.encode(), index), frame)

    def delete(self, inv: str, length: int) -> None:
        for i in range(length):
            self.tx.delete(b"jn/%s/%010d" % (inv.encode(), i))


class UserStateView(_Table):
    """``st/``: a virtual object's or workflow's state, by name."""

    __slots__ = ()

    @staticmethod
    def _prefix(service: str, key: str) -> bytes:
        return b"st/" + _object(service, key) + b"/"

    def get(self, service: str, key: str, name: bytes) -> bytes | None:
        return self.tx.get(self._prefix(service, key) + name)

    def all(self, service: str, key: str) -> list[tuple[bytes, bytes]]:
        prefix = self._prefix(service, key)
        return [(k[len(prefix):], v) for k, v in self.tx.scan(prefix)]


class UserState(UserStateView):
    __slots__ = ()

    def set(self, service: str, key: str, name: bytes, value: bytes) -> None:
        self.tx.put(self._prefix(service, key) + name, value)

    def clear(self, service: str, key: str, name: bytes) -> None:
        self.tx.delete(self._prefix(service, key) + name)

    def clear_all(self, service: str, key: str) -> None:
        for k, _ in self.tx.scan(self._prefix(service, key)):
            self.tx.delete(k)


class ObjectsView(_Table):
    """``lk/``, ``ib/``, ``ih/``: each virtual object key's exclusive lock and the inbox behind it."""

    __slots__ = ()

    def lock_holder(self, service: str, key: str) -> str | None:
        raw = self.tx.get(b"lk/" + _object(service, key))
        return raw.decode() if raw is not None else None

    def waiting(self, service: str, key: str) -> list[str]:
        """The invocations in the key's inbox, oldest first (not the state mutations waiting there)."""
        return [v.decode() for _, v in self.tx.scan(b"ib/%s/" % _object(service, key)) if not v.startswith(b"sm/")]

    def depth(self) -> int:
        """Invocations waiting behind an object's lock, over all keys of the partition."""
        return _int(self.tx.get(b"meta/inbox_depth"), 0)


class Objects(ObjectsView):
    __slots__ = ()

    def set_lock(self, service: str, key: str, inv: str | None) -> None:
        if inv is None:
            self.tx.delete(b"lk/" + _object(service, key))
        else:
            self.tx.put(b"lk/" + _object(service, key), inv.encode())

    def push(self, service: str, key: str, inv: str) -> None:
        seq = _int(self.tx.get(b"meta/inbox_next"), 0)
        self.tx.put(b"meta/inbox_next", str(seq + 1).encode())
        self.tx.put(b"ib/%s/%020d" % (_object(service, key), seq), inv.encode())
        _count(self.tx, b"meta/inbox_depth", 1)

    def pop(self, service: str, key: str) -> str | None:
        """The oldest invocation waiting for the key, removed from the inbox.

        The scan starts at the entry taken last: from the prefix's start it would walk the deleted
        entries of every earlier invocation of the key (RocksDB keeps them as tombstones until
        compaction), 69 µs a pop at first and 430 µs after 5,000 on one hot key (measured).
        A store without the ``ih/`` row (older, or the key's first pop) scans from the start."""
        obj = _object(service, key)
        head = self.tx.get(b"ih/" + obj)
        for k, v in self.tx.scan(b"ib/%s/" % obj, head):
            self.tx.put(b"ih/" + obj, k)
            self.tx.delete(k)
            _count(self.tx, b"meta/inbox_depth", -1)
            return v.decode()
        return None

    def remove(self, service: str, key: str, inv: str) -> None:
        for k, v in self.tx.scan(b"ib/%s/" % _object(service, key)):
            if v.decode() == inv:
                self.tx.delete(k)
                _count(self.tx, b"meta/inbox_depth", -1)


class PromisesView(_Table):
    """``pm/``, ``pw/``: a workflow's durable promises and the invocations waiting for them."""

    __slots__ = ()

    def get(self, service: str, key: str, name: str) -> tuple[bytes | None, Failure | None] | None:
        """(value, None) or (None, failure) once completed; None while pending."""
        raw = self.tx.get(b"pm/" + _object(service, key) + b"/" + name.encode())
        if raw is None:
            return None
        if raw[:1] == b"V":
            return raw[1:], None
        return None, cast(Failure, codec.decode("Failure", 1, raw[1:]))


class Promises(PromisesView):
    __slots__ = ()

    def complete(self, service: str, key: str, name: str, value: bytes | None, failure: Failure | None) -> None:
        body = b"V" + (value or b"") if failure is None else b"F" + codec.encode("Failure", failure)
        self.tx.put(b"pm/" + _object(service, key) + b"/" + name.encode(), body)

    def add_waiter(self, service: str, key: str, name: str, inv: str, completion_id: int) -> None:
        self.tx.put(b"pw/%s/%s/%s/%d" % (_object(service, key), name.encode(), inv.encode(), completion_id), b"")

    def take_waiters(self, service: str, key: str, name: str) -> list[tuple[str, int]]:
        prefix = b"pw/%s/%s/" % (_object(service, key), name.encode())
        out = []
        for k, _ in self.tx.scan(prefix):
            inv, cid = k[len(prefix):].rsplit(b"/", 1)
            out.append((inv.decode(), int(cid)))
            self.tx.delete(k)
        return out

    def clear(self, service: str, key: str) -> None:
        for prefix in (b"pm/", b"pw/"):
            for k, _ in self.tx.scan(prefix + _object(service, key) + b"/"):
                self.tx.delete(k)


class CompletionsView(_Table):
    """``cr/``: completed plain invocations by completion time, for retention (apply/retention_sweep.py)."""

    __slots__ = ()

    def before(self, before_ms: int, limit: int) -> list[tuple[bytes, str]]:
        """(index key, invocation id) of up to ``limit`` completions older than ``before_ms``, oldest first."""
        rows = self.tx.scan_below(b"cr/", b"cr/%015d" % before_ms, limit)
        return [(k, k[19:].decode()) for k, _ in rows]


class Completions(CompletionsView):
    __slots__ = ()

    def index(self, inv: str, completed_ms: int) -> None:
        self.tx.put(b"cr/%015d/%s" % (completed_ms, inv.encode()), b"")

    def unindex(self, index_key: bytes) -> None:
        self.tx.delete(index_key)


class TimersView(_Table):
    """``tm/``: durable timers, by due time."""

    __slots__ = ()

    @staticmethod
    def key(fire_at_ms: int, timer_id: str) -> str:
        return f"tm/{fire_at_ms:015d}/{timer_id}"

    def get(self, timer_key: str) -> Timer | None:
        raw = self.tx.get(timer_key.encode())
        return cast(Timer, codec.decode_stored("Timer", raw)) if raw is not None else None

    def all(self) -> Iterator[tuple[str, Timer]]:
        for k, v in self.tx.scan(b"tm/"):
            yield k.decode(), cast(Timer, codec.decode_stored("Timer", v))


class Timers(TimersView):
    __slots__ = ()

    def put(self, timer_key: str, row: Timer) -> None:
        self.tx.put(timer_key.encode(), codec.encode_stored("Timer", row))

    def delete(self, timer_key: str) -> None:
        self.tx.delete(timer_key.encode())


class OutboxView(_Table):
    """``ob/``: what this partition sends to other partitions and to reply topics, in order."""

    __slots__ = ("_next",)

    def __init__(self, tx: Transaction) -> None:
        super().__init__(tx)
        self._next: int | None = None  # read once per batch: replies append, OutboxShipped checks it

    def next(self) -> int:
        """The sequence the next outbox entry gets: every entry ever written is below it."""
        if self._next is None:
            self._next = _int(self.tx.get(b"meta/outbox_next"), 0)
        return self._next

    def entry(self, seq: int) -> OutboxEntry | None:
        raw = self.tx.get(b"ob/%020d" % seq)
        return cast(OutboxEntry, codec.decode_stored("OutboxEntry", raw)) if raw is not None else None

    def backlog(self) -> int:
        """How many entries are not acknowledged as shipped yet (two reads, no scan)."""
        return self.next() - _int(self.tx.get(b"meta/outbox_head"), 0)

    def pending(self) -> list[int]:
        """Entries not shipped yet: from the head on. Every entry below it was deleted, and seeking
        to it skips their tombstones (a new leader's scan would walk every entry ever shipped)."""
        head = _int(self.tx.get(b"meta/outbox_head"), 0)
        return [int(k[3:]) for k, _ in self.tx.scan(b"ob/", b"ob/%020d" % head)]


class Outbox(OutboxView):
    __slots__ = ()

    def append(self, topic: str, partition: int, kind: str, encode: Callable[[int], bytes]) -> int:
        """Store the next outbox entry; ``encode(seq)`` builds its body, which carries its own seq."""
        seq = self.next()
        self._next = seq + 1
        self.tx.put(b"meta/outbox_next", str(seq + 1).encode())
        row = {"seq": seq, "topic": topic, "partition": partition, "kind": kind, "value": encode(seq)}
        self.tx.put(b"ob/%020d" % seq, codec.encode_stored("OutboxEntry", row))
        return seq

    def truncate(self, up_to: int) -> None:
        head = _int(self.tx.get(b"meta/outbox_head"), 0)
        for seq in range(head, up_to + 1):
            self.tx.delete(b"ob/%020d" % seq)
        if up_to + 1 > head:
            self.tx.put(b"meta/outbox_head", str(up_to + 1).encode())

    def forget_reads(self) -> None:
        self._next = None


class Dedup(_Table):
    """``dd/``: per source partition, the highest outbox sequence applied from it."""

    __slots__ = ()

    def seen(self, source_partition: int, seq: int) -> bool:
        """True if (partition, seq) was applied before; otherwise remember it."""
        key = b"dd/%d" % source_partition
        if seq <= _int(self.tx.get(key), -1):
            return True
        self.tx.put(key, str(seq).encode())
        return False


class LeadershipView(_Table):
    """``meta/epoch``, ``meta/epoch_owner``: the claim that holds the partition."""

    __slots__ = ("_epoch",)

    def __init__(self, tx: Transaction) -> None:
        super().__init__(tx)
        self._epoch: int | None = None  # read once per batch: every leader-made record checks it

    def epoch(self) -> int:
        if self._epoch is None:
            self._epoch = _int(self.tx.get(b"meta/epoch"), 0)
        return self._epoch

    def owner(self) -> str | None:
        raw = self.tx.get(b"meta/epoch_owner")
        return raw.decode() if raw is not None else None


class Leadership(LeadershipView):
    __slots__ = ()

    def set(self, epoch: int, owner: str) -> None:
        self._epoch = epoch
        self.tx.put(b"meta/epoch", str(epoch).encode())
        self.tx.put(b"meta/epoch_owner", owner.encode())

    def forget_reads(self) -> None:
        self._epoch = None


class TablesView:
    """Every table, read only: what the invoker and introspection read of a partition."""

    timer_key = staticmethod(TimersView.key)

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.invocations = InvocationsView(tx)
        self.journals = JournalsView(tx)
        self.state = UserStateView(tx)
        self.objects = ObjectsView(tx)
        self.promises = PromisesView(tx)
        self.completions = CompletionsView(tx)
        self.timers = TimersView(tx)
        self.outbox = OutboxView(tx)
        self.leadership = LeadershipView(tx)
        self.schedules = SchedulesView(tx)


class Tables(TablesView):
    """Every table, read and written by apply() through one Transaction."""

    def __init__(self, tx: Transaction) -> None:  # not super().__init__: it would build views for nothing
        self.tx = tx
        self.invocations: Invocations = Invocations(tx)
        self.journals: Journals = Journals(tx)
        self.state: UserState = UserState(tx)
        self.objects: Objects = Objects(tx)
        self.promises: Promises = Promises(tx)
        self.completions: Completions = Completions(tx)
        self.timers: Timers = Timers(tx)
        self.outbox: Outbox = Outbox(tx)
        self.dedup = Dedup(tx)
        self.leadership: Leadership = Leadership(tx)
        self.schedules: Schedules = Schedules(tx)

    def forget_reads(self) -> None:
        """Drop what was remembered from reads: the transaction was rolled back to a savepoint."""
        self.invocations.forget_reads()
        self.leadership.forget_reads()
        self.outbox.forget_reads()
