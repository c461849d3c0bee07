"""``POST /query``: SQL over the introspection tables with Apache DataFusion, answered as Restate does.

The body is ``{"query": "..."}``. The answer is an Arrow IPC stream unless the request accepts
``application/json``, then ``{"rows": [{column: value, ...}]}`` with null columns left out,
timestamps as ISO 8601 (``...Z``), durations as ISO 8601 (``PT86400S``) and bytes as hex. Errors
are ``{"message": "Datafusion error: ..."}`` (400 for SQL the parser refuses, 500 otherwise).

Every table the statement names is scanned (the whole cluster's partitions, or only what a filter on
``partition_key``, an object or an invocation id selects: ``selection``) into record batches and the
statement runs over them. Bounds: rows read (``REPRISE_QUERY_SCAN_LIMIT``), rows answered
(``REPRISE_QUERY_ROW_LIMIT``; more are cut off and ``x-reprise-truncated: true`` says so) and time
(``REPRISE_QUERY_TIMEOUT_S``). Everything from the scan to the answer's bytes runs on a worker thread,
paced to the process's share for queries (``REPRISE_QUERY_CPU_SHARE``, engine/interpreter_share.py):
the event loop only sends the bytes.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from aiohttp import web
from datafusion import SessionConfig, SessionContext

from reprise.engine.config import Config
from reprise.engine.ids import InvocationId
from reprise.engine.interpreter_share import QUERIES, Meter
from reprise.engine.introspection import ScanRefused, Selection
from reprise.engine.introspection_schema import PARTITIONED, SCHEMAS
from reprise.engine.partitioning import partition_for_key, partition_of_pk
from reprise.engine.registry import Registry

ARROW_STREAM = "application/vnd.apache.arrow.stream"
# (table, what the statement selects, max rows, deadline) -> one record batch of the table
ScanFn = Callable[[str, Selection, int, float], pa.RecordBatch]


@dataclass(frozen=True)
class QueryLimits:
    rows: int
    scan: int
    timeout_s: float

    @staticmethod
    def of(cfg: Config) -> QueryLimits:
        return QueryLimits(cfg.query_row_limit, cfg.query_scan_limit, cfg.query_timeout_s)


class QueryFailed(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Answer:
    schema: pa.Schema
    batches: list[pa.RecordBatch]
    truncated: bool


# Pushdown: a top-level equality on a column that names a partition selects that partition only.
_STRING = r"'((?:[^']|'')*)'"
_PK = re.compile(r"\b(?:\w+\.)?partition_key\s*=\s*(\d+)", re.I)
_KEY = re.compile(r"\b(?:\w+\.)?(?:target_service_key|service_key)\s*=\s*" + _STRING, re.I)
_SERVICE = re.compile(r"\b(?:\w+\.)?(?:target_service_name|service_name)\s*=\s*" + _STRING, re.I)
_ID = re.compile(r"\b(?:\w+\.)?id\s*(?:=\s*" + _STRING + r"|in\s*\(([^)]*)\))", re.I)
_LITERAL_OR_COMMENT = re.compile(r"'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/", re.S)


def _bare(sql: str, literals: bool = False) -> str:
    """``sql`` without its comments and (unless ``literals``) with its string literals emptied; one pass,
    so a quote in a comment or a comment marker in a literal is read as what it is."""
    return _LITERAL_OR_COMMENT.sub(
        lambda m: (m.group(0) if literals else "''") if m.group(0).startswith("'") else " ", sql)


def referenced(sql: str) -> list[str]:
    """The introspection tables ``sql`` names (outside string literals)."""
    bare = _bare(sql)
    return [t for t in SCHEMAS if re.search(rf"\b{t}\b", bare, re.I)]


def selection(sql: str, partitions: int) -> Selection:
    """What a statement over one partitioned table can need, from its top-level equalities (ANDed):
    the partitions that ``partition_key``, a service key or an invocation ``id`` (``=`` or ``IN``)
    name, and those ids, or the (service_name, service_key) objects both name. Any OR or NOT outside
    a string literal, or a partitioned table named twice, and the statement reads everything."""
    bare = _bare(sql).lower()
    if re.search(r"\b(or|not)\b", bare) or sum(len(re.findall(rf"\b{t}\b", bare)) for t in PARTITIONED) != 1:
        return Selection()
    sql = _bare(sql, literals=True)
    chosen: set[int] | None = None
    ids: set[str] | None = None
    keys: set[str] | None = None
    services: set[str] | None = None

    def both(a: set[Any] | None, b: set[Any]) -> set[Any]:
        return b if a is None else a & b

    for m in _PK.finditer(sql):
        chosen = both(chosen, {partition_of_pk(int(m.group(1)), partitions)})
    for m in _KEY.finditer(sql):
        keys = both(keys, {m.group(1).replace("''", "'")})
    for m in _SERVICE.finditer(sql):
        services = both(services, {m.group(1).replace("''", "'")})
    for m in _ID.finditer(sql):
        found = [m.group(1)] if m.group(1) is not None else re.findall(_STRING, m.group(2))
        found = [i.replace("''", "'") for i in found]
        try:
            for i in found:
                InvocationId.parse(i)
        except ValueError:
            return Selection()
        ids = both(ids, set(found))
    if keys is not None:
        chosen = both(chosen, {partition_for_key(k, partitions) for k in keys})
    if ids is not None:
        chosen = both(chosen, {InvocationId.parse(i).partition(partitions) for i in ids})
    objects = {(s, k) for s in services for k in keys} if services is not None and keys is not None else None
    return Selection(frozenset(chosen) if chosen is not None else None,
                     frozenset(ids) if ids is not None else None,
                     frozenset(objects) if objects is not None else None)


def run(sql: str, scan: ScanFn, registry: Registry, partitions: int, limits: QueryLimits,
        meter: Meter | None = None) -> Answer:
    """Scan what ``sql`` names and run it; blocking (the admin API calls it on a thread)."""
    deadline = time.monotonic() + limits.timeout_s
    config = SessionConfig().with_information_schema(True).with_default_catalog_and_schema("restate", "public")
    ctx = SessionContext(config)
    named = set(referenced(sql))
    wanted = selection(sql, partitions)
    budget = limits.scan
    for table, schema in SCHEMAS.items():
        if table not in named:
            data = schema.empty_table().to_batches() or [pa.RecordBatch.from_pylist([], schema=schema)]
        elif table in PARTITIONED:
            got = scan(table, wanted, budget, deadline)
            budget -= got.num_rows
            data = [got]
        else:
            data = [registry_batch(table, registry)]
        ctx.register_record_batches(table, [data])
    try:
        stream = ctx.sql(sql).execute_stream()
        out, rows, truncated = [], 0, False
        schema = None
        for b in stream:
            got = b.to_pyarrow()
            schema = got.schema
            if rows + got.num_rows > limits.rows:
                got, truncated = got.slice(0, limits.rows - rows), True
            out.append(got)
            rows += got.num_rows
            if truncated:
                break
            if meter is not None:
                meter.pace()
            if time.monotonic() > deadline:
                raise QueryFailed(504, "the query ran past REPRISE_QUERY_TIMEOUT_S")
        if schema is None:
            schema = ctx.sql(sql).schema()
    except ValueError as e:  # DataFusion's errors
        message = str(e).replace("\n", " ")
        raise QueryFailed(400 if message.startswith("SQL error") else 500, f"Datafusion error: {message}") from None
    return Answer(schema, out, truncated)


def registry_batch(table: str, registry: Registry) -> pa.RecordBatch:
    """``sys_service`` or ``sys_deployment`` from the deployment registry."""
    from reprise.engine.introspection_schema import batch

    if table == "sys_service":
        return batch(table, [{"name": s.name, "revision": s.revision, "public": s.public, "ty": s.ty.lower(),
                              "deployment_id": s.deployment_id} for s in registry.services()])
    return batch(table, [{
        "id": d.id, "ty": "http", "endpoint": d.uri, "created_at": datetime.fromtimestamp(d.created_ms / 1000, UTC),
        "min_service_protocol_version": d.manifest.get("minProtocolVersion"),
        "max_service_protocol_version": d.manifest.get("maxProtocolVersion"),
        "services": [s.name for s in d.services]} for d in registry.deployments()])


def _json_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"
    if isinstance(v, timedelta):
        return duration_text(((v.days * 86_400 + v.seconds) * 1_000_000 + v.microseconds) * 1_000)
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, list):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    return v


_NANOS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def duration_text(nanos: int) -> str:
    """A duration as Restate's JSON writes it (chrono's ISO 8601 form): ``P0D`` for zero, else
    ``PT<seconds>S`` with the fraction's digits up to the last non-zero one (``PT1.5S``,
    ``PT86400S``, ``PT0.001S``), a minus sign in front of a negative one (``-PT1.5S``)."""
    if nanos == 0:
        return "P0D"
    sign = "-" if nanos < 0 else ""
    seconds, fraction = divmod(abs(nanos), 1_000_000_000)
    return f"{sign}PT{seconds}" + (f".{fraction:09d}".rstrip("0") if fraction else "") + "S"


JSON_SLICE = 128  # rows turned into Python values between two paces (~2.5 ms of interpreter)


def _json_column(col: pa.Array) -> list[Any]:
    """One column's values as JSON values, converted a column at a time where Arrow can (timestamps:
    ~20x faster than one ``datetime`` per value)."""
    if pa.types.is_timestamp(col.type):  # ms precision: "%S" writes the seconds with their milliseconds
        return pc.strftime(col, format="%Y-%m-%dT%H:%M:%SZ").to_pylist()
    if pa.types.is_duration(col.type):  # from the integers: exact in every unit
        unit = _NANOS[col.type.unit]
        return [None if v is None else duration_text(v * unit) for v in col.cast(pa.int64()).to_pylist()]
    values = col.to_pylist()
    if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type) \
            or pa.types.is_nested(col.type):
        return [_json_value(v) for v in values]
    return values


def as_json(answer: Answer, meter: Meter | None = None) -> bytes:
    rows: list[dict[str, Any]] = []
    for b in answer.batches:
        for at in range(0, b.num_rows, JSON_SLICE):
            part = b.slice(at, JSON_SLICE)
            # a column null in every row of the slice is left out of each (most of sys_invocation's are)
            kept = [i for i in range(part.num_columns) if part.column(i).null_count < part.num_rows]
            names = [part.schema.names[i] for i in kept]
            columns = [_json_column(part.column(i)) for i in kept]
            if not kept:  # every column null: still a row each, as Restate answers ({})
                rows.extend({} for _ in range(part.num_rows))
            for values in zip(*columns, strict=True):
                rows.append({k: v for k, v in zip(names, values, strict=True) if v is not None})
            if meter is not None:
                meter.pace()
    return orjson.dumps({"rows": rows})


def as_arrow(answer: Answer) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, answer.schema) as writer:
        for b in answer.batches:
            writer.write_batch(b)
    return sink.getvalue().to_pybytes()


def error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"message": message}), content_type="application/json")


def respond(sql: str, scan: ScanFn, registry: Registry, partitions: int, limits: QueryLimits,
            json_wanted: bool) -> tuple[bytes, str, bool]:
    """(body, content type, truncated) of the answer to ``sql``, paced to the process's share for
    queries; blocking: the admin API runs it on a worker thread."""
    meter = QUERIES.meter()
    answer = run(sql, scan, registry, partitions, limits, meter)
    if json_wanted:
        return as_json(answer, meter), "application/json", answer.truncated
    return as_arrow(answer), ARROW_STREAM, answer.truncated


async def handle(request: web.Request, scan: ScanFn, registry: Registry, partitions: int,
                 limits: QueryLimits) -> web.Response:
    try:
        body = orjson.loads(await request.read())
        sql = body["query"]
        if not isinstance(sql, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return web.Response(status=400, text='Failed to parse the request body as JSON: expected {"query": "..."}')
    loop = asyncio.get_running_loop()
    json_wanted = "application/json" in request.headers.get("accept", "")
    try:
        body, content_type, truncated = await asyncio.wait_for(
            loop.run_in_executor(None, respond, sql, scan, registry, partitions, limits, json_wanted),
            limits.timeout_s + 5)
    except QueryFailed as e:
        return error(e.status, str(e))
    except ScanRefused as e:
        return error(e.status, str(e))
    except TimeoutError:
        return error(504, "the query ran past REPRISE_QUERY_TIMEOUT_S")
    headers = {"x-reprise-truncated": "true"} if truncated else {}
    return web.Response(body=body, content_type=content_type, headers=headers)
