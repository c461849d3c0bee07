"""SQL introspection's parts without a broker: pushdown, scans of a real RocksDB store, bounds, encoding."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from reprise.engine.ids import InvocationId
from reprise.engine.introspection import ScanRefused, Selection
from reprise.engine.introspection_schema import SCHEMAS, batch
from reprise.engine.partitioning import partition_for_key, partition_key
from reprise.ingress import sql_query
from reprise.partitions.state.introspect import StoreTables
from reprise.partitions.state.rocks_store import RocksStore
from reprise.partitions.state.sql_scan import PartitionScan, ScanBudget
from tests.harness import ROOT
from tests.unit.apply_helpers import N, invoke, new_partition

KEYED = str(InvocationId.new("k"))


@pytest.mark.parametrize(("sql", "expected"), [
    ("select * from state where service_key = 'k'", {partition_for_key("k", N)}),
    ("select * from state s where s.service_name = 'C' and s.service_key = 'k'", {partition_for_key("k", N)}),
    ("select * from sys_invocation where target_service_key = 'k'", {partition_for_key("k", N)}),
    ("select * from sys_invocation where partition_key = 6", {6 % N}),
    (f"select * from sys_journal where id = '{KEYED}'", {partition_for_key("k", N)}),
    (f"select * from sys_invocation inv where inv.id in ('{KEYED}')", {partition_for_key("k", N)}),
    ("select * from state where service_key = 'door'", {partition_for_key("door", N)}),  # 'or' in a literal
    ("select * from state where service_key = 'k' or service_key = 'j'", None),
    ("select * from state where not service_key = 'k'", None),
    ("select * from state", None),
    # two partitioned tables: a key filter may be about either, so both are scanned whole
    ("select * from state join sys_inbox on state.service_key = sys_inbox.service_key where state.service_key = 'k'",
     None),
    ("select * from sys_invocation where id = 'inv_nonsense'", None),
    # comments are not statements: a quote or a filter in one changes nothing
    ("-- the state's rows\nselect * from state where service_key = 'k'", {partition_for_key("k", N)}),
    ("select * from state /* where service_key = 'k' */", None),
])
def test_pushdown_selects_only_the_partitions_a_filter_names(sql: str, expected: set[int] | None) -> None:
    assert sql_query.selection(sql, N).partitions == expected


def test_pushdown_names_the_ids_and_objects_a_filter_names() -> None:
    other = str(InvocationId.new("j"))
    got = sql_query.selection(f"select * from sys_journal where id = '{KEYED}'", N)
    assert got.ids == {KEYED} and got.objects is None
    got = sql_query.selection(f"select * from sys_invocation i where i.id in ('{KEYED}', '{other}') and "
                              f"i.id = '{KEYED}'", N)
    assert got.ids == {KEYED} and got.partitions == {partition_for_key("k", N)}
    got = sql_query.selection("select * from state where service_name = 'C' and service_key = 'it''s'", N)
    assert got.objects == {("C", "it's")} and got.partitions == {partition_for_key("it's", N)} and got.ids is None
    assert sql_query.selection("select * from state where service_key = 'k'", N).objects is None


def _store_of(tmp_path: Path, writes: dict[bytes, bytes | None]) -> RocksStore:
    store = RocksStore(tmp_path / "store")
    store.write(writes)
    return store


def test_a_scan_reads_rows_and_never_shows_credential_headers(tmp_path: Path) -> None:
    p = new_partition()  # partition 0: an object key of its own
    key = next(k for k in (f"obj{i}" for i in range(100)) if partition_for_key(k, N) == 0)
    inv = str(InvocationId.new(key))
    invoke(p, inv, key=key, handler_kind="EXCLUSIVE",
           headers=[{"name": "authorization", "value": "Bearer s3cret"}, {"name": "x-trace", "value": "t1"}])
    store = _store_of(tmp_path, dict(p.store.data))
    scan = PartitionScan(store.db, lambda name: "VIRTUAL_OBJECT", ScanBudget(1_000, time.monotonic() + 30))
    (row,) = list(scan.rows("sys_invocation"))
    assert (row["id"], row["status"], row["target"], row["target_service_ty"]) == (
        inv, "running", f"Svc/{key}/h", "virtual_object")
    (entry,) = list(scan.rows("sys_journal"))
    assert entry["entry_type"] == "Command: Input" and entry["raw"] is None
    assert "s3cret" not in entry["entry_json"] and "t1" in entry["entry_json"]
    assert batch("sys_journal", [entry]).num_rows == 1
    store.close()


def test_a_selection_of_ids_reads_only_those_invocations(tmp_path: Path) -> None:
    p = new_partition()
    keys = [k for k in (f"sel{i}" for i in range(200)) if partition_for_key(k, N) == 0][:3]
    invs = [str(InvocationId.new(k)) for k in keys]
    for k, inv in zip(keys, invs, strict=True):
        invoke(p, inv, key=k, handler_kind="EXCLUSIVE")
    store = _store_of(tmp_path, dict(p.store.data))
    chosen = Selection(ids=frozenset({invs[1]}))
    for table in ("sys_invocation", "sys_journal"):
        budget = ScanBudget(1, time.monotonic() + 30)  # one row: a scan of the partition would pass it
        assert [r["id"] for r in PartitionScan(store.db, lambda name: None, budget, chosen).rows(table)] == [invs[1]]
    store.close()


def test_a_scan_stops_at_its_row_budget_and_its_deadline(tmp_path: Path) -> None:
    store = _store_of(tmp_path, {b"st/3:Svc1:k/n%03d" % i: b"v" for i in range(300)})
    tables = StoreTables({2: store}, lambda name: None)
    tables.CHUNK = 64  # several Arrow batches, answered as one
    got = tables.scan("state", {2}, 300, time.monotonic() + 30)
    assert got.num_rows == 300 and got.column("service_key")[0].as_py() == "k"
    assert got.column("partition_key")[0].as_py() == partition_key("k")
    with pytest.raises(ScanRefused) as refused:
        tables.scan("state", {2}, 299, time.monotonic() + 30)
    assert refused.value.status == 400
    with pytest.raises(ScanRefused) as late:
        tables.scan("state", {2}, 1_000, time.monotonic() - 1)
    assert late.value.status == 504
    one = Selection(objects=frozenset({("Svc2", "b")}))  # read by a seek: the 300 other rows cost nothing
    store.write({b"st/4:Svc21:b/x": b"y"})
    got = tables.scan("state", {2}, 5, time.monotonic() + 30, one)
    assert got.to_pylist()[0]["key"] == "x" and got.num_rows == 1
    with pytest.raises(ScanRefused) as elsewhere:
        tables.scan("state", {1}, 1_000, time.monotonic() + 30)
    assert elsewhere.value.status == 409
    store.close()


class _NoRegistry:
    def services(self) -> list[Any]:
        return []

    def deployments(self) -> list[Any]:
        return []


def test_only_the_named_tables_are_scanned_and_the_answer_is_cut_at_the_row_limit() -> None:
    scanned: list[tuple[str, set[int] | None]] = []

    def scan(table: str, selection: Selection, max_rows: int, deadline: float) -> pa.RecordBatch:
        scanned.append((table, selection.partitions))
        return batch(table, [{"partition_key": 1, "service_name": "C", "service_key": "k", "key": "a"}])

    limits = sql_query.QueryLimits(rows=10, scan=100, timeout_s=30)
    answer = sql_query.run("select key from state where service_key = 'k'", scan, _NoRegistry(), N,  # type: ignore[arg-type]
                           limits)
    assert scanned == [("state", {partition_for_key("k", N)})] and answer.batches[0].to_pylist() == [{"key": "a"}]
    cut = sql_query.run("select * from range(50)", scan, _NoRegistry(), N, limits)  # type: ignore[arg-type]
    assert sum(b.num_rows for b in cut.batches) == 10 and cut.truncated
    whole = sql_query.run("select count(*) from range(50)", scan, _NoRegistry(), N, limits)  # type: ignore[arg-type]
    assert not whole.truncated and len(scanned) == 1


def test_json_answers_as_restate_writes_them() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    status = batch("sys_invocation", [{"id": "inv_x", "status": "completed", "created_at": at,
                                      "completion_retention": timedelta(days=1),
                                      "suspended_waiting_for_completions": [1, 2]}])
    journal = batch("sys_journal", [{"id": "inv_x", "raw": b"\x01\xff"}])
    encoded = json.loads(sql_query.as_json(sql_query.Answer(status.schema, [status], False)))
    assert encoded == {"rows": [{"id": "inv_x", "status": "completed", "created_at": "2026-01-02T03:04:05.678Z",
                                 "completion_retention": "PT86400S", "suspended_waiting_for_completions": [1, 2]}]}
    assert json.loads(sql_query.as_json(sql_query.Answer(journal.schema, [journal], False)))["rows"][0]["raw"] == "01ff"
    nulls = batch("sys_invocation", [{"id": "inv_x"}, {"id": "inv_y"}]).select(["trace_id"])
    assert json.loads(sql_query.as_json(sql_query.Answer(nulls.schema, [nulls], False))) == {"rows": [{}, {}]}
    assert [f.name for f in SCHEMAS["sys_invocation"]][-3:] == ["status", "completion_result", "completion_failure"]


def test_durations_are_written_as_restate_writes_them() -> None:
    """The answers of a Restate 1.7.12 server to the same statement (chrono's ISO 8601 form)."""
    def scan(table: str, selection: Selection, max_rows: int, deadline: float) -> pa.RecordBatch:
        raise AssertionError("no table is read")

    casts = {"z": (0, "Millisecond"), "s1": (1000, "Millisecond"), "d1": (86_400_000, "Millisecond"),
             "s15": (1500, "Millisecond"), "mix": (90_061_001, "Millisecond"), "neg": (-1500, "Millisecond"),
             "ms1": (1, "Millisecond"), "zs": (0, "Second"), "us": (1500, "Microsecond"), "ns": (7, "Nanosecond")}
    sql = "select " + ", ".join(f"arrow_cast({v}, 'Duration({u})') as {k}" for k, (v, u) in casts.items())
    answer = sql_query.run(sql, scan, _NoRegistry(), N, sql_query.QueryLimits(rows=10, scan=100, timeout_s=30))  # type: ignore[arg-type]
    assert json.loads(sql_query.as_json(answer))["rows"] == [{
        "z": "P0D", "s1": "PT1S", "d1": "PT86400S", "s15": "PT1.5S", "mix": "PT90061.001S", "neg": "-PT1.5S",
        "ms1": "PT0.001S", "zs": "P0D", "us": "PT0.0015S", "ns": "PT0.000000007S"}]


def test_starting_a_process_imports_neither_pyarrow_nor_datafusion() -> None:
    out = subprocess.run([sys.executable, "-c", "import sys, reprise.deploy.runtime, reprise.deploy.cli; "
                          "print(sorted(m for m in ('pyarrow', 'datafusion') if m in sys.modules))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
