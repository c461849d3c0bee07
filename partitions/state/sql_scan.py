"""Rows of the SQL introspection tables (engine/introspection_schema.py), scanned from one partition's store.

A scan reads a RocksDB snapshot, on the caller's thread (the admin API's executor), never the
apply thread: the apply loop keeps writing while a query reads a consistent view of the partition.
A scan is bounded by a row budget and a deadline shared by the whole query (``ScanBudget``), and
paced: it takes at most the process's share of the interpreter for queries
(engine/interpreter_share.py), so it never holds the GIL from the apply loop for long.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import MessageToDict

from reprise.engine.ids import InvocationId
from reprise.engine.interpreter_share import Meter
from reprise.engine.introspection import REDACTED, RESTATE_VERSION, ScanRefused, Selection, is_credential_header
from reprise.engine.partitioning import partition_key
from reprise.engine.protocol import journal as pj
from reprise.engine.protocol.messages import MessageType, is_notification
from reprise.schemas import codec

Row = dict[str, Any]
ServiceTypes = Callable[[str], str | None]  # service name -> SERVICE | VIRTUAL_OBJECT | WORKFLOW, if known


@dataclass
class ScanBudget:
    rows: int  # rows every table of the query may still read, together
    deadline: float  # time.monotonic() past which the query is abandoned
    meter: Meter | None = None  # the scanning thread's draw on the process's share for queries

    def take(self, n: int = 1) -> None:
        self.rows -= n
        if self.rows < 0:
            raise ScanRefused(400, "the query reads more rows than REPRISE_QUERY_SCAN_LIMIT allows: filter on "
                                   "partition_key, a key or an invocation id")
        if self.rows % 16 == 0:
            if self.meter is not None:
                self.meter.pace()  # the apply loop and the ingress of this process keep their share
            if self.rows % 256 == 0 and time.monotonic() > self.deadline:
                raise ScanRefused(504, "the query ran past REPRISE_QUERY_TIMEOUT_S")


class SnapshotReader:
    """Point reads and prefix scans of a rocksdict snapshot (raw mode)."""

    def __init__(self, db: Any) -> None:
        from rocksdict import ReadOptions

        self._snap = db.snapshot()
        self._read_options = ReadOptions

    def get(self, key: bytes) -> bytes | None:
        try:
            return self._snap[key]
        except KeyError:
            return None

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        from reprise.partitions.core.transaction import prefix_end

        opts = self._read_options()
        end = prefix_end(prefix)
        if end is not None:
            opts.set_iterate_upper_bound(end)
        it = self._snap.iter(opts)
        it.seek(prefix)
        while it.valid():
            k = it.key()
            if not k.startswith(prefix):
                break
            yield k, it.value()
            it.next()


def _ts(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _object(encoded: bytes) -> tuple[str, str, bytes]:
    """(service, key, rest after '/') of a table key's ``len:service len:key`` part (tables.py ``_object``)."""
    parts, at = [], 0
    for _ in range(2):
        colon = encoded.index(b":", at)
        n = int(encoded[at:colon])
        parts.append(encoded[colon + 1:colon + 1 + n].decode())
        at = colon + 1 + n
    return parts[0], parts[1], encoded[at + 1:]


_STATUS = {"SCHEDULED": "scheduled", "INBOXED": "pending", "INVOKED": "running", "SUSPENDED": "suspended",
           "BACKING_OFF": "backing-off", "PAUSED": "paused", "COMPLETED": "completed"}
_SERVICE_TY = {"SERVICE": "service", "VIRTUAL_OBJECT": "virtual_object", "WORKFLOW": "workflow"}


# Statuses whose invocation has no journal yet (its input waits in the inbox or the schedule) and
# no attempt: Restate leaves their journal and attempt columns null.
_NOT_STARTED = frozenset({"INBOXED", "SCHEDULED"})
# Statuses whose attempt state Restate 1.7.12 shows (running, retrying after a failure, paused: the
# rows of its ``sys_invocation_state``): the attempt columns (retry_count, last_*) are null for the
# others, a suspended invocation's too.
_WITH_ATTEMPT = frozenset({"INVOKED", "BACKING_OFF", "PAUSED"})


def waiting_future_json(row: Row) -> str | None:
    """What a suspended invocation waits for, as Restate writes it: any of these completions and
    signals (``Unknown``: a suspension does not say how the handler combines them). None when it
    waits for a named signal, whose form in Restate's JSON is not known here."""
    if row["waiting_named"]:
        return None
    waits = [{"Single": {"CompletionId": c}} for c in row["waiting_completions"]]
    waits += [{"Single": {"SignalIndex": i}} for i in row["waiting_signals"]]
    return json.dumps({"Unknown": waits}, separators=(",", ":"))


def journal_commands(row: Row) -> int:
    """How many of an invocation's journal entries are commands: every notification the journal
    holds put its id in ``completed_ids``, ``signal_ids`` or ``named_signals`` (``lifecycle.append_entry``;
    a second notification of one id is never appended), so the rest are commands."""
    notifications = len(row["completed_ids"]) + len(row["signal_ids"]) + len(row["named_signals"])
    return max(0, row["journal_length"] - notifications)


def _invoked_by(caller: Any, sender: str | None, restarted_from: str | None) -> str:
    """Restate's ``invoked_by``: a handler's call or one-way send, a subscription's record, a
    restart-as-new, else a request (an ingress, a Kafka-native command, a schedule)."""
    if caller or (sender is not None and not sender.startswith("sub_")):
        return "service"
    if sender is not None:
        return "subscription"
    return "restart_as_new" if restarted_from else "ingress"


def completion_retention_ms(row: Row, plain_retention_ms: int | None) -> int | None:
    """How long the invocation's status is kept once it completed: an idempotent invocation's or
    workflow run's retention, fixed when it completes (its service's retention then; None before,
    and in a row stored before it was kept), else the engine's for plain invocations
    (``plain_retention_ms``; None: kept)."""
    if row["handler_kind"] == "WORKFLOW" or row["idempotency_key"] is not None:
        return row.get("completion_retention_ms")
    return plain_retention_ms


def invocation_row(row: Row, service_types: ServiceTypes, scheduled_start_ms: int | None = None,
                   plain_retention_ms: int | None = None) -> Row:
    """One ``sys_invocation`` row (a superset of ``sys_invocation_status``) from a stored status row;
    ``scheduled_start_ms``: when a scheduled invocation is due; ``plain_retention_ms``: how long the
    engine keeps a completed plain invocation (None: kept)."""
    key, status = row["key"], row["status"]
    ty = service_types(row["service"])
    failure = row["last_failure"]
    result = row["result_failure"]
    caller, sender = row["caller"], row.get("sender_id")  # (a one-way send's sender, or a subscription: v3 rows)
    by_subscription = sender is not None and sender.startswith("sub_")
    started = status not in _NOT_STARTED
    out = {
        "partition_key": InvocationId.parse(row["invocation_id"]).pk, "id": row["invocation_id"],
        "status": _STATUS.get(status, status.lower()),
        "target": f"{row['service']}/{key + '/' if key is not None else ''}{row['handler']}",
        "target_service_name": row["service"], "target_service_key": key, "target_handler_name": row["handler"],
        "target_service_ty": _SERVICE_TY.get(ty or "", "service" if key is None else "virtual_object"),
        "idempotency_key": row["idempotency_key"],
        "invoked_by": _invoked_by(caller, sender, row.get("restarted_from")),
        "invoked_by_id": caller["invocation_id"] if caller else sender if not by_subscription else None,
        "invoked_by_subscription_id": sender if by_subscription else None, "restarted_from": row.get("restarted_from"),
        "pinned_deployment_id": row["deployment_id"],
        "journal_size": row["journal_length"] if started else None,
        "journal_commands_size": journal_commands(row) if started else None,
        "pinned_service_protocol_version": 6 if row["deployment_id"] else None,
        "created_at": _ts(row["created_ms"]), "modified_at": _ts(row["modified_ms"]),
        "created_using_restate_version": RESTATE_VERSION,
        "inboxed_at": _ts(row["created_ms"]) if status == "INBOXED" else None,
        "scheduled_at": _ts(row["created_ms"]) if status == "SCHEDULED" else None,
        "scheduled_start_at": _ts(scheduled_start_ms) if status == "SCHEDULED" else None,
        "running_at": _ts(row["created_ms"]) if row["attempt"] > 0 else None,
        "completed_at": _ts(row["completed_ms"]),
        "journal_retention": row.get("journal_retention_ms"),  # set at completion (v2 rows)
        "completion_retention": completion_retention_ms(row, plain_retention_ms),
        "suspended_waiting_for_completions": list(row["waiting_completions"]) if status == "SUSPENDED" else None,
        "suspended_waiting_for_signals": list(row["waiting_signals"]) if status == "SUSPENDED" else None,
        "suspended_waiting_future_json": waiting_future_json(row) if status == "SUSPENDED" else None,
    }
    if status in _WITH_ATTEMPT:
        out.update({
            "retry_count": row["attempt"], "last_start_at": _ts(row["last_entry_ms"]) if row["attempt"] else None,
            "next_retry_at": _ts(row["next_retry_ms"]), "last_attempt_deployment_id": row["deployment_id"],
            "last_failure": failure["message"] if failure else None,
            "last_failure_error_code": str(failure["code"]) if failure else None})
    if status == "COMPLETED":
        out["completion_result"] = "failure" if result else "success"
        out["completion_failure"] = f"[{result['code']}] {result['message']}" if result else None
    return out


def _entry_type(t: int) -> str:
    name = MessageType(t).name
    words = name.split("_")
    camel = "".join(w.capitalize() for w in words[:-1])
    return f"{'Notification' if is_notification(t) else 'Command'}: {camel}"


def _entry_body(msg: Any) -> dict[str, Any]:
    """An entry's fields as Restate's journal JSON names them (``completion_id``, headers as name/value),
    with the values of credential headers redacted."""
    body = MessageToDict(msg, preserving_proto_field_name=True)
    if "result_completion_id" in body:
        body["completion_id"] = body.pop("result_completion_id")
    if "wake_up_time" in body:
        body["wake_up_time"] = int(body["wake_up_time"])
    if "headers" in body:
        body["headers"] = [{"name": h.get("key", ""), "value": REDACTED if is_credential_header(h.get("key", ""))
                            else h.get("value", "")} for h in body["headers"]]
    if hasattr(msg, "name") and "name" not in body:
        body["name"] = ""
    return body


_RESULT = {"value": "Success", "void": "Void", "failure": "Failure", "invocation_id": "InvocationId",
           "state_keys": "StateKeys"}


def _lite(t: int, name: str, msg: Any) -> dict[str, Any]:
    """An entry's ``entry_lite_json`` body as Restate 1.7.12 writes it for the entry types compared
    with it (the rest: ``{}``): a completion's id and result kind, a command's small fields."""
    if is_notification(t):
        if msg.WhichOneof("id") != "completion_id":
            return {name: {}}
        return {"ty": {"Completion": name}, "id": {"CompletionId": msg.completion_id},
                "result": _RESULT.get(msg.WhichOneof("result") or "", "Void")}
    if t == MessageType.RUN_COMMAND:
        body: dict[str, Any] = {"completion_id": msg.result_completion_id, "name": msg.name}
    elif t == MessageType.SLEEP_COMMAND:
        body = {"wake_up_time": msg.wake_up_time, "completion_id": msg.result_completion_id}
    elif t == MessageType.SET_STATE_COMMAND:
        body = {"key": msg.key.decode("utf-8", "replace")}
    elif t == MessageType.GET_EAGER_STATE_COMMAND:
        body = {"key": msg.key.decode("utf-8", "replace"),
                "result": _RESULT.get(msg.WhichOneof("result") or "", "Void")}
    elif t == MessageType.OUTPUT_COMMAND:
        body = {"result": _RESULT.get(msg.WhichOneof("result") or "", "Success")}
    else:
        body = {}
    return {name: body}


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))  # as Restate writes its JSON columns


def _has_credentials(body: dict[str, Any]) -> bool:
    return any(h["value"] == REDACTED for h in body.get("headers", ()))


def journal_rows(inv: str, frames: list[bytes]) -> list[Row]:
    """``sys_journal`` rows of one invocation's journal."""
    pk = InvocationId.parse(inv).pk
    notified: dict[int, Any] = {}
    for raw in frames:
        if is_notification(pj.frame_type(raw)):
            msg = pj.decode(raw)
            if msg.WhichOneof("id") == "completion_id":
                notified[msg.completion_id] = msg
    rows = []
    for index, raw in enumerate(frames):
        t = pj.frame_type(raw)
        msg = pj.decode(raw)
        kind = "Notification" if is_notification(t) else "Command"
        name = _entry_type(t).split(": ")[1]
        body = _entry_body(msg)
        shown = ({kind: {"Completion": {name: body}}} if kind == "Notification" and t != MessageType.SIGNAL_NOTIFICATION
                 else {kind: {name: body}})
        row: Row = {"partition_key": pk, "id": inv, "index": index, "entry_type": _entry_type(t),
                    "raw": None if _has_credentials(body) else raw[8:], "raw_length": len(raw) - 8, "version": 2,
                    "entry_json": _compact(shown), "entry_lite_json": _compact({kind: _lite(t, name, msg)})}
        if kind == "Command":
            row["name"] = getattr(msg, "name", "")
            completion = getattr(msg, "result_completion_id", 0)
            row["completed"] = completion in notified if completion else None
            if t == MessageType.CALL_COMMAND or t == MessageType.ONE_WAY_CALL_COMMAND:
                row["invoked_target"] = "/".join(p for p in (msg.service_name, msg.key, msg.handler_name) if p)
                sent = notified.get(msg.invocation_id_notification_idx)
                row["invoked_id"] = sent.invocation_id if sent is not None else None
            elif t == MessageType.SLEEP_COMMAND:
                row["sleep_wakeup_at"] = _ts(msg.wake_up_time)
            elif t in (MessageType.GET_PROMISE_COMMAND, MessageType.PEEK_PROMISE_COMMAND,
                       MessageType.COMPLETE_PROMISE_COMMAND):
                row["promise_name"] = msg.key
        rows.append(row)
    return rows


def _object_key(service: str, key: str) -> bytes:
    """The ``len:service len:key`` part of a table key (tables.py ``_object``)."""
    s, k = service.encode(), key.encode()
    return b"%d:%s%d:%s" % (len(s), s, len(k), k)


class PartitionScan:
    """The rows of each introspection table in one partition's store, read from one snapshot.

    With ``ids`` a table keyed by invocation reads only those invocations' rows; with ``objects`` a
    table keyed by object only those objects' rows (seeks, not a scan of the partition)."""

    def __init__(self, db: Any, service_types: ServiceTypes, budget: ScanBudget,
                 selection: Selection | None = None, plain_retention_ms: int | None = None) -> None:
        self._r = SnapshotReader(db)
        self._types = service_types
        self._plain_retention_ms = plain_retention_ms
        self._budget = budget
        self._ids = selection.ids if selection is not None else None
        self._objects = selection.objects if selection is not None else None

    def rows(self, table: str) -> Iterator[Row]:
        """The table's rows, one at a time: the caller turns them into Arrow batches as they come."""
        return getattr(self, "_" + table)()

    def _prefixes(self, table: bytes) -> list[bytes]:
        """Where an object-keyed table's rows are: the selected objects', else the whole table."""
        if self._objects is None:
            return [table]
        return [table + _object_key(s, k) + b"/" for s, k in sorted(self._objects)]

    def _statuses(self) -> Iterator[Row]:
        if self._ids is not None:
            found = ((b"", self._r.get(b"in/" + i.encode())) for i in sorted(self._ids))
            rows: Iterator[tuple[bytes, bytes | None]] = found
        else:
            rows = self._r.scan(b"in/")
        for _, raw in rows:
            if raw is None:
                continue
            self._budget.take()
            yield codec.decode_stored("InvocationStatus", raw)

    def _sys_invocation(self) -> Iterator[Row]:
        due: dict[str, int] | None = None
        for r in self._statuses():
            if r["status"] == "SCHEDULED" and due is None:
                due = self._scheduled_starts()  # read once, and only where something is scheduled
            yield invocation_row(r, self._types, due.get(r["invocation_id"]) if due is not None else None,
                                 self._plain_retention_ms)

    def _scheduled_starts(self) -> dict[str, int]:
        """Invocation id -> when it is due, for the scheduled invocations of the partition: their
        ``invoke`` timers (``tm/<fire time>/<invocation>/invoke/0``, read from the keys alone)."""
        due = {}
        for k, _ in self._r.scan(b"tm/"):
            fire_at, _, timer_id = k[3:].decode().partition("/")
            inv, _, kind = timer_id.partition("/")
            if kind.startswith("invoke/"):
                due[inv] = int(fire_at)
        return due

    _sys_invocation_status = _sys_invocation  # its columns are a subset: the batch keeps only its own

    def _sys_idempotency(self) -> Iterator[Row]:
        return ({"partition_key": InvocationId.parse(r["invocation_id"]).pk, "service_name": r["service"],
                 "service_key": r["key"], "service_handler": r["handler"], "idempotency_key": r["idempotency_key"],
                 "invocation_id": r["invocation_id"]} for r in self._statuses() if r["idempotency_key"])

    def _sys_journal(self) -> Iterator[Row]:
        prefixes = [b"jn/" + i.encode() + b"/" for i in sorted(self._ids)] if self._ids is not None else [b"jn/"]
        for prefix in prefixes:
            current, frames = None, []
            for k, v in self._r.scan(prefix):
                self._budget.take()
                inv = k[3:].rsplit(b"/", 1)[0].decode()
                if inv != current and current is not None:
                    yield from journal_rows(current, frames)
                    frames = []
                current = inv
                frames.append(v)
            if current is not None:
                yield from journal_rows(current, frames)

    def _state(self) -> Iterator[Row]:
        for prefix in self._prefixes(b"st/"):
            for k, v in self._r.scan(prefix):
                self._budget.take()
                service, key, name = _object(k[3:])
                yield {"partition_key": partition_key(key), "service_name": service, "service_key": key,
                       "key": name.decode("utf-8", "replace"), "key_length": len(name), "value_utf8": _text(v),
                       "value": v, "value_length": len(v)}

    def _sys_inbox(self) -> Iterator[Row]:
        for prefix in self._prefixes(b"ib/"):
            for k, v in self._r.scan(prefix):
                if v.startswith(b"sm/"):  # a state mutation waiting its turn, not an invocation
                    continue
                self._budget.take()
                service, key, seq = _object(k[3:])
                raw = self._r.get(b"in/" + v)
                created = codec.decode_stored("InvocationStatus", raw)["created_ms"] if raw is not None else None
                yield {"partition_key": partition_key(key), "service_name": service, "service_key": key,
                       "id": v.decode(), "sequence_number": int(seq), "created_at": _ts(created)}

    def _sys_keyed_service_status(self) -> Iterator[Row]:
        if self._objects is not None:
            held = ((b"lk/" + _object_key(s, k), self._r.get(b"lk/" + _object_key(s, k)))
                    for s, k in sorted(self._objects))
            rows: Iterator[tuple[bytes, bytes | None]] = held
        else:
            rows = self._r.scan(b"lk/")
        for k, v in rows:
            if v is None:
                continue
            self._budget.take()
            service, key, _ = _object(k[3:] + b"/")
            yield {"partition_key": partition_key(key), "service_name": service, "service_key": key,
                   "invocation_id": v.decode()}

    def _sys_promise(self) -> Iterator[Row]:
        for prefix in self._prefixes(b"pm/"):
            for k, v in self._r.scan(prefix):
                self._budget.take()
                service, key, name = _object(k[3:])
                row: Row = {"partition_key": partition_key(key), "service_name": service, "service_key": key,
                            "key": name.decode(), "completed": True}
                if v[:1] == b"V":
                    row["completion_success_value"] = v[1:]
                    row["completion_success_value_utf8"] = _text(v[1:])
                else:
                    failure = codec.decode("Failure", 1, v[1:])
                    row["completion_failure"] = f"[{failure['code']}] {failure['message']}"
                yield row
