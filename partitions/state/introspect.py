"""Read-only views of the partitions' stores, for the admin API, the CLI and the web page."""

from __future__ import annotations

import base64
import heapq
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter

from reprise.engine.ids import InvocationId
from reprise.engine.interpreter_share import QUERIES
from reprise.engine.introspection import ScanRefused, Selection
from reprise.engine.protocol import journal as pj
from reprise.partitions.core.apply.schedule import describe as describe_schedule
from reprise.partitions.core.tables import TablesView
from reprise.partitions.core.transaction import KeyValueStore, Transaction
from reprise.partitions.state.sql_scan import PartitionScan, ScanBudget, ServiceTypes
from reprise.schemas.records import InvocationStatus


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode()


def summary(row: InvocationStatus) -> dict[str, Any]:
    failure = row["result_failure"] or row["last_failure"]
    return {
        "id": row["invocation_id"], "target": f"{row['service']}/{row['key'] + '/' if row['key'] else ''}"
        f"{row['handler']}", "service": row["service"], "handler": row["handler"], "key": row["key"],
        "status": row["status"], "attempts": row["attempt"], "journal_length": row["journal_length"],
        "created_at_ms": row["created_ms"], "modified_at_ms": row["modified_ms"],
        "completed_at_ms": row["completed_ms"], "idempotency_key": row["idempotency_key"],
        "last_failure": failure, "next_retry_at_ms": row["next_retry_ms"],
        "output": _text(row["result_value"]) if row["status"] == "COMPLETED" and not row["result_failure"] else None,
    }


class StoreIntrospector:
    def __init__(self, stores: Mapping[int, KeyValueStore], partitions: int) -> None:
        self._stores = stores
        self._partitions = partitions

    def _tables(self, partition: int) -> TablesView | None:
        store = self._stores.get(partition)
        return TablesView(Transaction(store)) if store is not None else None

    def invocations(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        rows = []
        for store in self._stores.values():
            tables = TablesView(Transaction(store))
            for k, _ in store.scan(b"in/"):
                row = tables.invocations.get(k[3:].decode())
                if row is not None and (status is None or row["status"] == status.upper()):
                    rows.append(row)
        return [summary(r) for r in heapq.nlargest(limit, rows, key=lambda r: r["created_ms"])]

    def pinned_counts(self) -> dict[str, int] | None:
        """Invocations not completed, per the deployment they are pinned to (a full scan: admin only);
        None unless this process holds every partition (it could not tell about the others)."""
        if len(self._stores) < self._partitions:
            return None
        counts: dict[str, int] = {}
        for store in self._stores.values():
            tables = TablesView(Transaction(store))
            if not any(n for status, n in tables.invocations.counts().items() if status != "COMPLETED"):
                continue  # nothing runs here: no scan
            for k, status in store.scan(b"is/"):  # the status index: only rows not completed are decoded
                if status == b"COMPLETED":
                    continue
                row = tables.invocations.get(k[3:].decode())
                if row is not None and row["deployment_id"]:
                    counts[row["deployment_id"]] = counts.get(row["deployment_id"], 0) + 1
        return counts

    def describe(self, invocation_id: str) -> dict[str, Any] | None:
        try:
            partition = InvocationId.parse(invocation_id).partition(self._partitions)
        except ValueError:
            return None
        tables = self._tables(partition)
        row = tables.invocations.get(invocation_id) if tables is not None else None
        if tables is None or row is None:
            return None
        entries = []
        for i in range(row["journal_length"]):
            raw = tables.journals.entry(invocation_id, i)
            entries.append({"index": i, **pj.describe(raw)} if raw is not None else {"index": i, "type": "?"})
        return {**summary(row), "partition": partition, "waiting_for": {
            "completions": row["waiting_completions"], "signals": row["waiting_signals"],
            "named_signals": row["waiting_named"]}, "attached_clients": len(row["attached_replies"]),
            "journal": entries}

    def state(self, service: str, key: str) -> dict[str, str]:
        from reprise.engine.partitioning import partition_for_key

        tables = self._tables(partition_for_key(key, self._partitions))
        if tables is None:
            return {}
        return {k.decode("utf-8", "replace"): _text(v) or "" for k, v in tables.state.all(service, key)}

    def timers(self, limit: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for partition, store in self._stores.items():
            for key, timer in TablesView(Transaction(store)).timers.all():
                out.append({"partition": partition, "key": key, **timer})
                if len(out) >= limit * 4:
                    break
        return sorted(out, key=lambda t: t["fire_at_ms"])[:limit]

    def schedules(self) -> list[dict[str, Any]]:
        """The durable cron schedules of the partitions held here, by id."""
        out = [{**describe_schedule(row), "partition": partition} for partition, store in self._stores.items()
               for row in TablesView(Transaction(store)).schedules.all()]
        return sorted(out, key=lambda s: s["id"])

# Partitions read for SQL queries: what a filter on the partition key saves shows here
QUERY_SCANS = Counter("reprise_query_partition_scans", "Partition scans for SQL introspection queries, by partition",
                      ["partition"])


class StoreTables:
    """The SQL introspection tables over the stores this process owns (engine.introspection.TableSource)."""

    def __init__(self, stores: dict[int, Any], service_types: ServiceTypes,
                 plain_retention_ms: int | None = None) -> None:
        self._stores = stores  # the processor's own dict: it changes as partitions come and go
        self._types = service_types
        self._plain_retention_ms = plain_retention_ms  # a completed plain invocation's (None: kept)

    def owned(self) -> set[int]:
        return set(self._stores)

    # Rows held as Python objects at once: they become an Arrow batch, then go. Turning 256 rows into
    # Arrow takes ~2 ms of interpreter without a pause, 4,096 took ~30 ms (all the apply loop waited).
    CHUNK = 256

    def scan(self, table: str, partitions: set[int], max_rows: int, deadline: float,
             selection: Selection | None = None) -> Any:
        import pyarrow as pa  # imported by the first query only

        from reprise.engine.introspection_schema import SCHEMAS, batch

        meter = QUERIES.meter()
        budget = ScanBudget(max_rows, deadline, meter)
        batches, chunk = [], []
        for p in sorted(partitions):
            QUERY_SCANS.labels(str(p)).inc()
            store = self._stores.get(p)
            if store is None:
                raise ScanRefused(409, f"partition {p} is not owned by this process")
            try:
                scan = PartitionScan(store.db, self._types, budget, selection, self._plain_retention_ms)
                for row in scan.rows(table):
                    chunk.append(row)
                    if len(chunk) >= self.CHUNK:
                        batches.append(batch(table, chunk))
                        chunk = []
                        meter.pace()
            except ScanRefused:
                raise
            except Exception as e:  # noqa: BLE001 - closed under the scan: the partition moved away
                if p not in self._stores:
                    raise ScanRefused(409, f"partition {p} moved away during the scan") from None
                raise ScanRefused(500, f"partition {p}: {e}") from e
        batches.append(batch(table, chunk))
        return pa.Table.from_batches(batches, schema=SCHEMAS[table]).combine_chunks().to_batches()[0] \
            if len(batches) > 1 else batches[0]
