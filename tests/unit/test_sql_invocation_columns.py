"""``sys_invocation`` columns Reprise fills as Restate 1.7.12 does (compared with a live Restate server
running the same handlers): commands in the journal, when a scheduled invocation is due, the Restate
version, what a suspended invocation waits for, and the attempt columns only where Restate shows
them; ``sys_service``'s revision and public flag."""

from __future__ import annotations

import json
import time
from pathlib import Path

from reprise.engine.ids import InvocationId
from reprise.engine.introspection import RESTATE_VERSION
from reprise.engine.introspection_schema import batch
from reprise.engine.partitioning import partition_for_key
from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import encode_message
from reprise.engine.registry import ServiceInfo
from reprise.ingress import sql_query
from reprise.partitions.state.rocks_store import RocksStore
from reprise.partitions.state.sql_scan import PartitionScan, ScanBudget
from tests.unit.apply_helpers import (
    N,
    Partition,
    inv_on,
    invoke,
    new_partition,
    outbox_records,
    output,
    run,
    run_done,
    suspended,
)


def _keys(n: int) -> list[str]:
    return [k for k in (f"col{i}" for i in range(400)) if partition_for_key(k, N) == 0][:n]


def _rows(tmp_path: Path, data: dict[bytes, bytes], plain_retention_ms: int | None = None) -> dict[str, dict]:
    store = RocksStore(tmp_path / "store")
    store.write(data)
    try:
        scan = PartitionScan(store.db, lambda name: "VIRTUAL_OBJECT", ScanBudget(1_000, time.monotonic() + 30),
                             plain_retention_ms=plain_retention_ms)
        rows = {r["id"]: r for r in scan.rows("sys_invocation")}
        batch("sys_invocation", list(rows.values()))  # and the values have the table's types
        return rows
    finally:
        store.close()


def test_journal_commands_scheduled_start_and_version(tmp_path: Path) -> None:
    p = new_partition()
    done, running, later = (str(InvocationId.new(k)) for k in _keys(3))
    invoke(p, done, key=_keys(3)[0], handler_kind="EXCLUSIVE")
    # input, a run, its completion, the output: 4 entries, 3 of them commands (Restate counts the same)
    p.effects(done, 1, [run(1), run_done(1, b'"a"'), output(b'"x"')], {})
    invoke(p, running, key=_keys(3)[1], handler_kind="EXCLUSIVE")
    invoke(p, later, key=_keys(3)[2], handler_kind="EXCLUSIVE", execute_at_ms=600_000)
    rows = _rows(tmp_path, dict(p.store.data))

    assert rows[done].get("status") == "completed"
    assert (rows[done].get("journal_size"), rows[done].get("journal_commands_size")) == (4, 3)
    assert (rows[running].get("journal_size"), rows[running].get("journal_commands_size")) == (1, 1)
    assert rows[later].get("status") == "scheduled"
    assert rows[later].get("scheduled_start_at").timestamp() == 600.0
    assert rows[running].get("scheduled_start_at") is None
    # no journal yet: the input waits with the schedule, as Restate's null journal_size says
    assert rows[later].get("journal_size") is None and rows[later].get("journal_commands_size") is None
    assert {r["created_using_restate_version"] for r in rows.values()} == {RESTATE_VERSION}


def test_attempt_columns_only_while_an_attempt_is_in_the_invoker(tmp_path: Path) -> None:
    p = new_partition()
    key = _keys(1)[0]
    holder, waiting = str(InvocationId.new(key)), str(InvocationId.new(key))
    invoke(p, holder, key=key, handler_kind="EXCLUSIVE")
    invoke(p, waiting, key=key, handler_kind="EXCLUSIVE")  # in the key's inbox behind the holder
    rows = _rows(tmp_path, dict(p.store.data))
    assert rows[holder].get("status") == "running"
    assert rows[holder].get("retry_count") == 1 and rows[holder].get("last_attempt_deployment_id") is None
    assert rows[waiting].get("status") == "pending"
    assert rows[waiting].get("retry_count") is None and rows[waiting].get("journal_size") is None

    p.effects(holder, 1, [output(b'"x"')], {})
    rows = _rows(tmp_path / "after", dict(p.store.data))
    assert rows[holder].get("status") == "completed"
    # Restate: a completed invocation has no attempt state (retry_count, last_start_at, ... null)
    done = rows[holder]
    assert (done.get("retry_count"), done.get("last_start_at"), done.get("last_attempt_deployment_id")) == (None,) * 3
    assert rows[waiting].get("status") == "running" and rows[waiting].get("retry_count") == 1


class _Registry:
    """A registry with one service at its second revision, made private by a PATCH."""

    def services(self) -> list[ServiceInfo]:
        return [ServiceInfo("Probe", "VIRTUAL_OBJECT", "dp_1", {}, public=False, revision=2)]


def test_sys_service_shows_the_revision_and_whether_the_service_is_public() -> None:
    (row,) = sql_query.registry_batch("sys_service", _Registry()).to_pylist()  # type: ignore[arg-type]
    assert row == {"name": "Probe", "revision": 2, "public": False, "ty": "virtual_object", "deployment_id": "dp_1"}


def test_a_suspended_invocation_shows_what_it_waits_for_and_no_attempt(tmp_path: Path) -> None:
    p = new_partition()
    key = _keys(1)[0]
    inv = str(InvocationId.new(key))
    invoke(p, inv, key=key, handler_kind="EXCLUSIVE")
    sleep = encode_message(pb.SleepCommandMessage(wake_up_time=9_000, result_completion_id=1))
    p.effects(inv, 1, [sleep], suspended(1))
    row = _rows(tmp_path, dict(p.store.data))[inv]
    assert row["status"] == "suspended"
    # what Restate 1.7.12 showed for a handler suspended on a sleep (completion 1; signal 1 is cancellation)
    assert row["suspended_waiting_future_json"] == \
        '{"Unknown":[{"Single":{"CompletionId":1}},{"Single":{"SignalIndex":1}}]}'
    assert row.get("retry_count") is None and row.get("last_attempt_deployment_id") is None
    assert (row["journal_size"], row["journal_commands_size"]) == (2, 2)


def test_journal_entries_lite_json_as_restate_writes_it(tmp_path: Path) -> None:
    p = new_partition()
    key = _keys(1)[0]
    inv = str(InvocationId.new(key))
    invoke(p, inv, key=key, handler_kind="EXCLUSIVE")
    p.effects(inv, 1, [run(1), run_done(1, b'"a"'), output(b'"x"')], {})
    store = RocksStore(tmp_path / "store")
    store.write(dict(p.store.data))
    scan = PartitionScan(store.db, lambda name: "VIRTUAL_OBJECT", ScanBudget(1_000, time.monotonic() + 30))
    lite = [r["entry_lite_json"] for r in scan.rows("sys_journal")]
    store.close()
    # the forms Restate 1.7.12 wrote for the same entries (its journal of a handler with a ctx.run step)
    assert lite == ['{"Command":{"Input":{}}}', '{"Command":{"Run":{"completion_id":1,"name":"step"}}}',
                    '{"Notification":{"ty":{"Completion":"Run"},"id":{"CompletionId":1},"result":"Success"}}',
                    '{"Command":{"Output":{"result":"Success"}}}']


def test_completion_retention_is_how_long_the_status_is_kept(tmp_path: Path) -> None:
    """As Restate 1.7.12 showed for a service with idempotency_retention 2h and journal_retention 30m, and
    a workflow with workflow_completion_retention 3h and journal_retention 0s: the status's retention
    and the journal's; a plain invocation's status is kept as long as the engine keeps completed ones."""
    p = new_partition()
    idem, wf, plain, running = (str(InvocationId.new(k)) for k in _keys(4))
    for inv, key, extra, retention, journal in ((idem, None, {"idempotency_key": "i"}, 7_200_000, 1_800_000),
                                                (wf, _keys(4)[1], {"handler_kind": "WORKFLOW"}, 10_800_000, 0),
                                                (plain, None, {}, None, None)):
        invoke(p, inv, key=key, **extra)
        p.feed("InvokerEffects", {"invocation_id": inv, "attempt": 1, "epoch": 1, "timestamp_ms": 2_000,
                                  "deployment_id": "dp_1", "entries": [output(b'"x"')], "outcome": {},
                                  "completion_retention_ms": retention, "journal_retention_ms": journal}, 2_000)
    invoke(p, running, idempotency_key="r")
    rows = _rows(tmp_path, dict(p.store.data), plain_retention_ms=86_400_000)
    shown_ms = {i: (r["status"], r.get("completion_retention"), r.get("journal_retention")) for i, r in rows.items()}
    assert shown_ms == {idem: ("completed", 7_200_000, 1_800_000), wf: ("completed", 10_800_000, 0),
                        plain: ("completed", 86_400_000, None),
                        running: ("running", None, None)}  # fixed when it completes
    shown = batch("sys_invocation", [rows[idem], rows[wf]])
    assert [(r["completion_retention"], r["journal_retention"]) for r in json.loads(sql_query.as_json(
        sql_query.Answer(shown.schema, [shown], False)))["rows"]] == [("PT7200S", "PT1800S"), ("PT10800S", "P0D")]
    assert _rows(tmp_path / "kept", dict(p.store.data))[plain].get("completion_retention") is None  # kept


def test_a_one_way_send_names_its_sender(tmp_path: Path) -> None:
    """Restate 1.7.12 showed ``invoked_by`` ``service`` and the sender's id for an invocation a handler
    sent (``ctx.object_send``), ``subscription`` and the subscription's id for one a subscription's
    record started; the Invoke record carries the sender to the new invocation's row."""
    p = new_partition()
    sender = inv_on(0)
    invoke(p, sender)
    send = encode_message(pb.OneWayCallCommandMessage(service_name="Counter", handler_name="add", key="sent",
                                                      parameter=b"1", invocation_id_notification_idx=1))
    p.effects(sender, 1, [send, output(b'"x"')], {})
    [(kind, child)] = [(k, r) for k, r in outbox_records(p) if k == "Invoke"]
    assert (child["caller"], child["sender_id"]) == (None, sender)
    q = Partition(partition_for_key("sent", N))
    q.feed("LeaderEpoch", {"partition": q.partition, "epoch": 1, "owner": "me", "timestamp_ms": 0})
    q.feed("Invoke", child)
    # a subscription's record names the subscription (Restate: invoked_by_subscription_id)
    by_sub = str(InvocationId.new("sent"))
    q.feed("Invoke", {**child, "invocation_id": by_sub, "sender_id": "sub_11BVI5vJtLsrSPlmgDPFNWF", "source": None})
    rows = _rows(tmp_path, dict(q.store.data))
    assert (rows[child["invocation_id"]]["invoked_by"], rows[child["invocation_id"]]["invoked_by_id"]) == (
        "service", sender)
    assert (rows[by_sub]["invoked_by"], rows[by_sub]["invoked_by_subscription_id"], rows[by_sub].get("invoked_by_id")) \
        == ("subscription", "sub_11BVI5vJtLsrSPlmgDPFNWF", None)
