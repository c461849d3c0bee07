"""The invoker: runs one attempt of an invocation over the Restate service protocol V6.

Request/response mode: StartMessage plus the whole journal in one request body, then the frames of
the response until End, Suspension or Error. Everything the attempt produced goes back to the log as
one InvokerEffects record; nothing the handler asked for reaches it before that record is applied
(a run's result is delivered by the next attempt, which replays the durable journal).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from engine.config import Config
from engine.discovery import PROTOCOL_VERSION, http_client
from engine.ids import InvocationId
from engine.protocol import journal as pj
from engine.protocol.framing import ProtocolError, iter_frames
from engine.protocol.messages import MessageType, is_command
from engine.registry import Deployment, Registry
from partitions.store import KeyValueStore, Transaction
from partitions.tables import Tables

log = logging.getLogger(__name__)
CONTENT_TYPE = f"application/vnd.restate.invocation.v{PROTOCOL_VERSION}"

EffectsSink = Callable[[int, dict[str, Any]], None]


class Invoker:
    """Runs attempts for the partitions this process leads; at most one per (invocation, attempt)."""

    def __init__(self, cfg: Config, registry: Registry, emit: EffectsSink, max_concurrency: int = 512) -> None:
        self._cfg = cfg
        self._registry = registry
        self._emit = emit
        self._running: set[tuple[str, int]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sem = asyncio.Semaphore(max_concurrency)
        self._clients: dict[bool, httpx.AsyncClient] = {}

    def start(self, partition: int, store: KeyValueStore, epoch: int, invocation_id: str, attempt: int) -> None:
        key = (invocation_id, attempt)
        if key in self._running:
            return
        self._running.add(key)
        task = asyncio.get_running_loop().create_task(self._attempt(partition, store, epoch, invocation_id, attempt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for c in self._clients.values():
            await c.aclose()

    def _client(self, use_http_11: bool) -> httpx.AsyncClient:
        if use_http_11 not in self._clients:
            self._clients[use_http_11] = http_client(use_http_11, self._cfg.attempt_timeout_s)
        return self._clients[use_http_11]

    async def _attempt(self, partition: int, store: KeyValueStore, epoch: int, inv: str, attempt: int) -> None:
        try:
            async with self._sem:
                effects = await self._run(store, inv, attempt)
            if effects is not None:
                effects.update(invocation_id=inv, attempt=attempt, epoch=epoch, timestamp_ms=_now_ms())
                self._emit(partition, effects)
        except Exception:
            log.exception("attempt %s of %s crashed", attempt, inv)
        finally:
            self._running.discard((inv, attempt))

    async def _run(self, store: KeyValueStore, inv: str, attempt: int) -> dict[str, Any] | None:
        tables = Tables(Transaction(store))
        row = tables.status(inv)
        if row is None or row["status"] != "INVOKED" or row["attempt"] != attempt:
            return None  # superseded while queued
        dep = self._deployment_for(row)
        if isinstance(dep, str):
            return _failed(404, dep, retryable=False, deployment_id=None)
        body = self._request_body(tables, row)
        headers = {"content-type": CONTENT_TYPE, "accept": CONTENT_TYPE, "x-restate-invocation-id": inv,
                   **dep.additional_headers}
        if row["key"] is not None:
            headers["x-restate-service-key"] = quote(row["key"], safe="")
        url = f"{dep.uri.rstrip('/')}/invoke/{row['service']}/{row['handler']}"
        try:
            resp = await self._client(dep.use_http_11).post(url, content=body, headers=headers)
        except httpx.HTTPError as e:
            return self._retry(row, 503, f"{type(e).__name__} calling {url}: {e}", dep.id, has_entries=False)
        if resp.status_code != 200:
            return self._retry(row, resp.status_code, f"deployment answered {resp.status_code}: {resp.text[:300]}",
                               dep.id, has_entries=False)
        return self._effects(row, resp.content, dep.id)

    def _deployment_for(self, row: dict[str, Any]) -> Deployment | str:
        if row["deployment_id"]:
            dep = self._registry.deployment(row["deployment_id"])
            if dep is not None:
                return dep
        svc = self._registry.service(row["service"])
        if svc is None:
            return f"Service '{row['service']}' not found: register a deployment that serves it"
        if row["handler"] not in svc.handlers:
            return f"Handler '{row['service']}/{row['handler']}' not found"
        dep = self._registry.deployment(svc.deployment_id)
        return dep if dep is not None else f"Deployment {svc.deployment_id} of '{row['service']}' not found"

    def _request_body(self, tables: Tables, row: dict[str, Any]) -> bytes:
        inv = row["invocation_id"]
        iid = InvocationId.parse(inv)
        journal = tables.journal(inv, row["journal_length"])
        state = tables.state(row["service"], row["key"]) if row["key"] is not None else []
        start = pj.start_message(
            id=iid.to_bytes(), debug_id=inv, known_entries=len(journal), state_map=state,
            partial_state=False, key=row["key"] or "", random_seed=iid.random_seed(),
            retry_count_since_last_stored_entry=row["failures_since_entry"],
            duration_since_last_stored_entry=max(0, _now_ms() - row["last_entry_ms"]))
        return start + b"".join(journal)

    def _effects(self, row: dict[str, Any], data: bytes, dep_id: str) -> dict[str, Any]:
        """Turn the response frames into an InvokerEffects body."""
        entries: list[bytes] = []
        try:
            for frame in iter_frames(data):
                t = frame.type
                if is_command(t):
                    entries.append(frame.raw)
                elif t == MessageType.PROPOSE_RUN_COMPLETION:
                    entries.append(pj.run_completion_from_proposal(frame.payload))
                elif t == MessageType.SUSPENSION:
                    s = pj.decode_frame_message(frame)
                    return {"deployment_id": dep_id, "entries": entries, "outcome": {
                        "completions": list(s.waiting_completions), "signals": list(s.waiting_signals),
                        "named_signals": list(s.waiting_named_signals)}}
                elif t == MessageType.END:
                    return {"deployment_id": dep_id, "entries": entries, "outcome": {}}
                elif t == MessageType.ERROR:
                    e = pj.decode_frame_message(frame)
                    delay = e.next_retry_delay if e.HasField("next_retry_delay") else None
                    return self._retry(row, e.code, e.message, dep_id, bool(entries), entries, delay)
                else:
                    raise ProtocolError(f"unexpected message type 0x{t:04x} from the deployment")
        except ProtocolError as e:
            return self._retry(row, 571, f"protocol violation: {e}", dep_id, bool(entries), entries)
        return self._retry(row, 502, "response ended without End, Suspension or Error", dep_id,
                           bool(entries), entries)

    def _retry(self, row: dict[str, Any], code: int, message: str, dep_id: str | None, has_entries: bool,
               entries: list[bytes] | None = None, delay_ms: int | None = None) -> dict[str, Any]:
        failures = 1 if has_entries else row["failures_since_entry"] + 1
        if delay_ms is None:
            delay_ms = self._cfg.retry.delay_ms(failures)
        log.info("attempt %s of %s failed (%s %s); retrying in %d ms", row["attempt"], row["invocation_id"],
                 code, message[:200], delay_ms)
        out = _failed(code, message, retryable=True, deployment_id=dep_id, delay_ms=delay_ms)
        out["entries"] = entries or []
        return out


def _failed(code: int, message: str, retryable: bool, deployment_id: str | None,
            delay_ms: int | None = None) -> dict[str, Any]:
    return {"deployment_id": deployment_id, "entries": [], "outcome": {
        "code": code, "message": message, "retryable": retryable, "next_retry_delay_ms": delay_ms}}


def _now_ms() -> int:
    return int(time.time() * 1000)
