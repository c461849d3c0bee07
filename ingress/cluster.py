"""Cluster-wide admin reads: any process's admin API answers for every partition.

A read about one partition (an invocation, an object's state) goes to that partition's owner; a read
about all of them (an invocation list, timers, an SQL table) is gathered from every owner and merged.
What this process owns it reads itself; the rest it asks of the owners' admin APIs, found through
the processors' consumer group (engine/cluster_members.py), over two internal routes that answer
from the answering process's own partitions only (so a request never travels further):

* ``POST /cluster/scan`` ``{"table", "partitions", "selection", "max_rows", "timeout_s"}``: an Arrow IPC stream;
* ``POST /cluster/introspect`` ``{"op", "args"}``: the JSON of an ``Introspector`` method.

A partition nobody owns at the moment (processors rebalancing, or all down) is a 503, never an
empty answer.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from aiohttp import web

from reprise.engine.cluster_members import Members
from reprise.engine.config import Config
from reprise.engine.ids import InvocationId
from reprise.engine.interpreter_share import QUERIES
from reprise.engine.introspection import Introspector, ScanRefused, Selection, TableSource, redact_headers
from reprise.engine.partitioning import partition_for_key
from reprise.engine.registry import Registry
from reprise.ingress.errors import IngressError
from reprise.ingress.request_io import in_thread

if TYPE_CHECKING:
    import pyarrow as pa
# pyarrow and DataFusion (ingress/sql_query.py) are imported by the first query, not at start: together
# they cost a process ~0.4 s of start and tens of MB it would otherwise never use


class ClusterReads:
    """Introspection and table scans over every partition, from whichever process this is."""

    def __init__(self, cfg: Config, partitions: int, token: str, local: Introspector | None = None,
                 tables: TableSource | None = None, members: Members | None = None) -> None:
        self.cfg, self.partitions = cfg, partitions
        self._local, self._tables, self._members = local, tables, members
        self._headers = {"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})}
        self._http = httpx.Client(timeout=cfg.query_timeout_s + 5)
        QUERIES.set_share(cfg.query_cpu_share)  # one cap per process: its scans and statements together

    # where partitions are ------------------------------------------------------------------
    def _owned(self) -> set[int]:
        return self._tables.owned() if self._tables is not None else set()

    def _placed(self, wanted: set[int], fresh: bool = False) -> tuple[set[int], dict[str, set[int]]]:
        """(the wanted partitions owned here, owner URL -> the wanted partitions it owns)."""
        here = wanted & self._owned()
        rest = wanted - here
        if not rest:
            return here, {}
        try:
            owners = self._members.owners(fresh) if self._members is not None else {}
        except Exception as e:  # noqa: BLE001 - the broker did not describe the group: ask again later
            raise IngressError(503, f"could not learn which processor owns what: {e}") from None
        missing = sorted(p for p in rest if p not in owners)
        if missing:
            raise IngressError(503, f"partitions {missing} have no owner right now (processors starting, "
                                    "rebalancing or down): try again")
        by_owner: dict[str, set[int]] = defaultdict(set)
        for p in rest:
            by_owner[owners[p]].add(p)
        return here, dict(by_owner)

    def _remote(self, url: str, path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            resp = self._http.post(url + path, content=orjson.dumps(body), headers=self._headers)
        except httpx.HTTPError as e:
            raise IngressError(503, f"the processor at {url} did not answer: {e}") from None
        if resp.status_code != 200:
            try:
                message = resp.json().get("message", resp.text)
            except ValueError:
                message = resp.text
            raise IngressError(503 if resp.status_code == 409 else resp.status_code, f"{url}: {message}")
        return resp

    # SQL tables ------------------------------------------------------------------------------
    def scan(self, table: str, selection: Selection, max_rows: int, deadline: float) -> pa.RecordBatch:
        """sql_query.ScanFn over the whole cluster: once more with fresh ownership if a partition moved."""
        try:
            return self._scan(table, selection, max_rows, deadline, False)
        except IngressError as e:
            if e.code != 503:
                raise
            return self._scan(table, selection, max_rows, deadline, True)

    def _scan(self, table: str, selection: Selection, max_rows: int, deadline: float,
              fresh: bool) -> pa.RecordBatch:
        import pyarrow as pa

        from reprise.engine.introspection_schema import SCHEMAS

        wanted = set(range(self.partitions)) if selection.partitions is None else set(selection.partitions)
        here, remote = self._placed(wanted, fresh)
        batches = []
        if here:
            assert self._tables is not None
            batches.append(self._tables.scan(table, here, max_rows, deadline, selection))
            max_rows -= batches[-1].num_rows
        for url, parts in remote.items():
            resp = self._remote(url, "/cluster/scan", {"table": table, "partitions": sorted(parts),
                                                        "selection": selection.to_json(), "max_rows": max_rows,
                                                        "timeout_s": max(0.0, deadline - time.monotonic())})
            got = pa.ipc.open_stream(resp.content).read_all()
            max_rows -= got.num_rows
            batches += got.to_batches()
        merged = pa.Table.from_batches(batches, schema=SCHEMAS[table]).combine_chunks().to_batches()
        return merged[0] if merged else pa.RecordBatch.from_pylist([], schema=SCHEMAS[table])

    # the Introspector, cluster-wide ------------------------------------------------------------
    def _one(self, partition: int, op: str, *args: Any) -> Any:
        here, remote = self._placed({partition})
        if here:
            assert self._local is not None
            return getattr(self._local, op)(*args)
        (url,) = remote
        return orjson.loads(self._remote(url, "/cluster/introspect", {"op": op, "args": list(args)}).content)

    def _all(self, op: str, *args: Any) -> list[Any]:
        here, remote = self._placed(set(range(self.partitions)))
        out: list[Any] = []
        if here:
            assert self._local is not None
            out += getattr(self._local, op)(*args)
        for url in remote:
            out += orjson.loads(self._remote(url, "/cluster/introspect", {"op": op, "args": list(args)}).content)
        return out

    def invocations(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        return heapq.nlargest(limit, self._all("invocations", status, limit), key=lambda r: r["created_at_ms"])

    def describe(self, invocation_id: str) -> dict[str, Any] | None:
        try:
            partition = InvocationId.parse(invocation_id).partition(self.partitions)
        except ValueError:
            return None
        return self._one(partition, "describe", invocation_id)

    def state(self, service: str, key: str) -> dict[str, str]:
        return self._one(partition_for_key(key, self.partitions), "state", service, key)

    def pinned_counts(self) -> dict[str, int] | None:
        """Invocations not completed, per the deployment they are pinned to, over the whole cluster
        (read like ``sys_invocation_status``); None while some partition has no owner to ask."""
        try:
            rows = self.scan("sys_invocation_status", Selection(), self.cfg.query_scan_limit,
                             time.monotonic() + self.cfg.query_timeout_s)
        except (IngressError, ScanRefused):
            return None
        counts: dict[str, int] = {}
        for dep, status in zip(rows.column("pinned_deployment_id").to_pylist(), rows.column("status").to_pylist(),
                               strict=True):
            if dep and status != "completed":
                counts[dep] = counts.get(dep, 0) + 1
        return counts

    def timers(self, limit: int) -> list[dict[str, Any]]:
        return sorted(self._all("timers", limit), key=lambda t: t["fire_at_ms"])[:limit]

    def schedules(self) -> list[dict[str, Any]]:
        return sorted(self._all("schedules"), key=lambda s: s["id"])

    # routes ----------------------------------------------------------------------------------
    # Statements, and scans served to other processes, running at once in this process; more wait.
    # Each holds its rows in memory (up to REPRISE_QUERY_SCAN_LIMIT), and a worker thread. Two
    # separate gates: a statement waiting on another process's scan never holds up the scans asked here.
    CONCURRENT = 2

    def add_routes(self, app: web.Application, registry: Registry) -> None:
        statements = asyncio.Semaphore(self.CONCURRENT)
        self._scans = asyncio.Semaphore(self.CONCURRENT)

        async def query(request: web.Request) -> web.Response:
            from reprise.ingress import sql_query

            limits = sql_query.QueryLimits.of(self.cfg)
            try:
                async with statements:
                    return await sql_query.handle(request, self.scan, registry, self.partitions, limits)
            except IngressError as e:
                return sql_query.error(e.code, e.message)

        app.router.add_post("/query", query)
        app.router.add_post(r"/v{version:\d+}/query", query)
        app.router.add_post("/cluster/scan", self._serve_scan)
        app.router.add_post("/cluster/introspect", self._serve_introspect)

    async def _serve_scan(self, request: web.Request) -> web.Response:
        from reprise.engine.introspection_schema import SCHEMAS
        from reprise.ingress import sql_query

        if self._tables is None:
            return sql_query.error(409, "this process owns no partitions")
        body = orjson.loads(await request.read())
        table, parts = body["table"], set(body["partitions"])
        selection = Selection.from_json(body.get("selection") or {})
        if table not in SCHEMAS:
            return sql_query.error(400, f"no table {table!r}")
        try:
            async with self._scans:
                got = await in_thread(self._scan_bytes, table, parts, int(body["max_rows"]),
                                       time.monotonic() + float(body["timeout_s"]), selection)
        except ScanRefused as e:
            return sql_query.error(e.status, str(e))
        return web.Response(body=got, content_type=sql_query.ARROW_STREAM)

    def _scan_bytes(self, table: str, parts: set[int], max_rows: int, deadline: float, selection: Selection) -> bytes:
        """A scan of partitions owned here as an Arrow IPC stream, all of it off the event loop."""
        from reprise.ingress import sql_query

        assert self._tables is not None
        got = self._tables.scan(table, parts, max_rows, deadline, selection)
        return sql_query.as_arrow(sql_query.Answer(got.schema, [got], False))

    async def _serve_introspect(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        op = body.get("op")
        if self._local is None or op not in ("invocations", "describe", "state", "timers", "schedules"):
            return web.json_response({"message": f"cannot answer {op!r} here"},
                                     status=409 if self._local is None else 400)
        got = await in_thread(getattr(self._local, op), *body.get("args", []))
        return web.Response(body=orjson.dumps(redact_headers(got)), content_type="application/json")
