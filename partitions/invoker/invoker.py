"""The invoker: runs one attempt of an invocation over the Restate service protocol V6.

Request/response mode: StartMessage plus the whole journal in one request body, then the frames of
the response until End, Suspension or Error. Everything the attempt produced goes back to the log as
one InvokerEffects record; nothing the handler asked for reaches it before that record is applied
(a run's result is delivered by the next attempt, which replays the durable journal).

Streaming mode (deployments whose manifest says BIDI_STREAM, over h2c): the same, except that the
request stays open and the handler's steps are journaled as they happen, their results streamed back
once applied (``partitions/invoker/streaming.py``): one attempt instead of one per step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx

from reprise.engine.clock import now_ms
from reprise.engine.config import Config
from reprise.engine.discovery import PROTOCOL_VERSION, http_client
from reprise.engine.hot_path import HOT_PATH
from reprise.engine.identity import answered, signer_from
from reprise.engine.ids import InvocationId
from reprise.engine.limits import LimitExceeded, Limits, exceeded
from reprise.engine.protocol import journal as pj
from reprise.engine.protocol.framing import Frame, ProtocolError, decode_frame, iter_frames
from reprise.engine.protocol.messages import MessageType, type_name
from reprise.engine.registry import Deployment, Registry
from reprise.partitions import metrics
from reprise.partitions.core.tables import TablesView
from reprise.partitions.core.transaction import KeyValueStore, Transaction
from reprise.partitions.invoker.attempt_output import AttemptOutput, Effects, failed_effects
from reprise.partitions.invoker.attempt_timeouts import AbortTimeoutFired, AttemptTimeouts, RequestWatch, TimeoutSweeper
from reprise.partitions.invoker.embedded import EmbeddedApp
from reprise.partitions.invoker.h2c import H2cClient, H2cError, WriteHold
from reprise.partitions.invoker.stream_policy import StreamPolicy
from reprise.partitions.invoker.streaming import LiveAttempt, Stream
from reprise.schemas.records import InvocationStatus

log = logging.getLogger(__name__)
CONTENT_TYPE = f"application/vnd.restate.invocation.v{PROTOCOL_VERSION}"

EffectsSink = Callable[[int, dict[str, Any]], None]
_STATE_WRITES = (MessageType.SET_STATE_COMMAND, MessageType.CLEAR_STATE_COMMAND, MessageType.CLEAR_ALL_STATE_COMMAND)


# Bound once: looking a labelled child up costs a lock and a dict lookup per attempt.
_ATTEMPTS_ENDED = {how: metrics.ATTEMPTS.labels(how) for how in ("suspended", "failed", "ended")}
_MODES = {True: metrics.ATTEMPT_MODES.labels("streaming"), False: metrics.ATTEMPT_MODES.labels("request_response")}


class Invoker:
    """Runs attempts for the partitions this process leads; at most one per (invocation, attempt)."""

    def __init__(self, cfg: Config, registry: Registry, emit: EffectsSink, max_concurrency: int = 512,
                 embedded: EmbeddedApp | None = None) -> None:
        self._cfg = cfg
        self._limits = Limits(cfg.max_message_bytes)
        self._registry = registry
        self._emit = emit
        self._running: set[tuple[str, int]] = set()
        self._started = 0  # attempts started, ever (batch() extends its hold past new ones)
        self._tasks: dict[asyncio.Task[None], int] = {}  # running attempt -> its partition
        self._sem = asyncio.Semaphore(max_concurrency)
        self._clients: dict[bool, httpx.AsyncClient] = {}
        self._embedded = embedded
        # h2c prior knowledge: http:// deployments (the default)
        self._h2c = H2cClient(cfg.attempt_timeout_s, cfg.invoker_connections, cfg.invoker_streams_per_connection,
                              max_response_bytes=self._limits.response_body)
        self._live: dict[tuple[str, int], LiveAttempt] = {}  # streaming attempts, by (invocation, attempt)
        self._policy = StreamPolicy(cfg.stream_calm_attempts)
        # the engine's inactivity and abort timeouts; a handler's own override them (attempt_timeouts.py)
        self._timeouts = AttemptTimeouts(cfg.inactivity_timeout_ms / 1000, cfg.abort_timeout_ms / 1000)
        self._sweeper = TimeoutSweeper(TimeoutSweeper.interval_for(self._timeouts))
        self._signer = signer_from(cfg.request_identity_private_key_pem_file)  # None: requests go unsigned
        HOT_PATH.watch(self.attempts_running)  # SQL queries are paced while attempts run

    def attempts_running(self) -> int:
        return len(self._running)

    def start(self, partition: int, store: KeyValueStore, epoch: int, invocation_id: str, attempt: int) -> None:
        key = (invocation_id, attempt)
        if key in self._running:
            return
        self._running.add(key)
        self._started += 1
        task = asyncio.get_running_loop().create_task(self._attempt(partition, store, epoch, invocation_id, attempt))
        self._tasks[task] = partition
        task.add_done_callback(lambda t: self._tasks.pop(t, None))

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """``with invoker.batch():`` what the block sends (a batch's notifications, and the first
        requests of the attempts it starts) goes out as one socket write per connection to each
        deployment, not one per stream; each write also wakes the service once (WriteHold)."""
        held: WriteHold = self._h2c.held_writes
        with held:
            started = self._started
            yield
            if self._started != started:
                held.extend_past_started_tasks()  # until the started tasks have sent their requests

    def deliver(self, invocation_id: str, attempt: int, index: int, frame: bytes) -> None:
        """A notification apply() made durable: to the attempt's stream, if it still streams."""
        live = self._live.get((invocation_id, attempt))
        if live is not None:
            live.deliver(index, frame)

    def abort(self, invocation_id: str, attempt: int) -> None:
        live = self._live.get((invocation_id, attempt))
        if live is not None:
            live.abort()

    def live_invocations(self) -> set[str]:
        """The invocations with an attempt running (or queued) in this process."""
        return {inv for inv, _ in self._running}

    def is_live(self, invocation_id: str, attempt: int) -> bool:
        """Whether this process runs (or has queued) that attempt now."""
        return (invocation_id, attempt) in self._running

    def fail_attempt(self, partition: int, store: KeyValueStore, epoch: int, invocation_id: str, attempt: int,
                     code: int, message: str, retryable: bool = True) -> bool:
        """End an attempt whose own record will never come (it was refused, or the attempt vanished)
        with a failure record: retried by the handler's policy, or terminal. False if the invocation
        no longer awaits that attempt."""
        _, row = _current(store, invocation_id, attempt)
        if row is None:
            return False
        self.abort(invocation_id, attempt)  # a streaming attempt still waiting would wait in vain
        if retryable:
            effects = self._retry(row, code, message, row["deployment_id"], False)
        else:
            effects = failed_effects(code, message, retryable=False, deployment_id=row["deployment_id"])
        effects.update(invocation_id=invocation_id, attempt=attempt, epoch=epoch, timestamp_ms=now_ms(),
                       completion_retention_ms=None, journal_retention_ms=self._journal_retention_ms(row))
        _ATTEMPTS_ENDED["failed"].inc()
        self._emit(partition, effects)
        return True

    async def drop_partition(self, partition: int) -> None:
        """Stop every attempt of a partition this process no longer leads, and wait until they stopped."""
        doomed = [t for t, p in self._tasks.items() if p == partition]
        for t in doomed:
            t.cancel()
        await asyncio.gather(*doomed, return_exceptions=True)

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._sweeper.close()
        for c in self._clients.values():
            await c.aclose()
        await self._h2c.aclose()

    def _client(self, use_http_11: bool) -> httpx.AsyncClient:
        if use_http_11 not in self._clients:
            self._clients[use_http_11] = http_client(use_http_11, self._cfg.attempt_timeout_s)
        return self._clients[use_http_11]

    async def _attempt(self, partition: int, store: KeyValueStore, epoch: int, inv: str, attempt: int) -> None:
        def emit(effects: Effects) -> None:
            effects.update(invocation_id=inv, attempt=attempt, epoch=epoch, timestamp_ms=now_ms())
            self._emit(partition, effects)

        try:
            async with self._sem:
                started = time.perf_counter()
                effects = await self._run(store, inv, attempt, emit)
                metrics.ATTEMPT_SECONDS.observe(time.perf_counter() - started)
            if effects is not None:
                outcome = effects["outcome"]
                _ATTEMPTS_ENDED["suspended" if "completions" in outcome else
                                "failed" if "retryable" in outcome else "ended"].inc()
                emit(effects)
        except Exception as e:  # noqa: BLE001 - a bug here must end the attempt in the log, not in silence
            log.exception("attempt %s of %s crashed", attempt, inv)
            try:
                self.fail_attempt(partition, store, epoch, inv, attempt, 500,
                                  f"the engine failed running attempt {attempt}: {type(e).__name__}: {e}")
            except Exception:  # noqa: BLE001 - e.g. its store closed: the watchdog (or a new leader) takes over
                log.exception("attempt %s of %s: its failure could not be recorded", attempt, inv)
        finally:
            self._running.discard((inv, attempt))
            live = self._live.pop((inv, attempt), None)
            if live is not None:
                metrics.STREAMED_NOTIFICATIONS.inc(live.streamed)

    async def _run(self, store: KeyValueStore, inv: str, attempt: int,
                   emit: Callable[[Effects], None]) -> Effects | None:
        tables, row = _current(store, inv, attempt)
        if row is None:
            return None  # superseded while queued
        dep = self._deployment_for(row)
        if isinstance(dep, str):
            # The ingress that accepted this invocation knew its service; our view of the deployments
            # topic may lag a registration made a moment ago elsewhere. Catch up before failing it.
            synced = await asyncio.get_running_loop().run_in_executor(None, self._registry.sync)
            tables, row = _current(store, inv, attempt)  # read again: records were applied meanwhile
            if row is None:
                return None
            dep = self._deployment_for(row)
            log.info("%s: %s was not in this process's registry; after catching up with the deployments "
                     "topic (%s) it is %s", inv, row["service"], "done" if synced else "timed out",
                     "missing" if isinstance(dep, str) else "known")
        if isinstance(dep, str):
            return failed_effects(404, dep, retryable=False, deployment_id=None)
        live = None
        handler = (dep.id, row["service"], row["handler"])
        timeouts = AttemptTimeouts.of(self._options(row), self._timeouts)
        streamable = self._streams_to(dep) and timeouts.inactivity_s > 0  # 0: request/response, as Restate
        if streamable and self._policy.streams(handler):
            # Registered before the journal is read: a notification applied after the read is delivered.
            live = self._live[(inv, attempt)] = LiveAttempt(row["journal_length"], timeouts, self._sweeper)
        body = self._request_body(tables, row)
        headers = {"content-type": CONTENT_TYPE, "accept": CONTENT_TYPE, "x-restate-invocation-id": inv,
                   **dep.additional_headers}
        if row["key"] is not None:
            headers["x-restate-service-key"] = quote(row["key"], safe="")
        path = f"/invoke/{row['service']}/{row['handler']}"
        if self._signer is not None:
            headers.update(self._signer.headers(path))  # request identity v1: a cached token per path
        out = AttemptOutput(row, dep.id, self._check_command, self._retry, self._limits)
        if live is not None:
            effects = await live.run(lambda: self._open_stream(dep, path, body, headers), out, emit)
        else:
            effects = await self._request_response(dep, path, body, headers, out, timeouts)
        if streamable:
            _MODES[live is not None].inc()
            self._policy.observe(handler, None if live is None else live.waited, effects)
        retention = self._retention_ms(row)
        if effects is not None and retention is not None:
            effects["completion_retention_ms"] = int(retention)
        if effects is not None:
            effects["journal_retention_ms"] = self._journal_retention_ms(row)
        return effects

    def _is_embedded(self, dep: Deployment) -> bool:
        return self._embedded is not None and dep.uri == self._embedded.uri

    def _streams_to(self, dep: Deployment) -> bool:
        """Streaming for the embedded app, and for deployments that offer BIDI_STREAM over h2c."""
        if not self._cfg.streaming:
            return False
        if self._is_embedded(dep):
            return True
        return (dep.manifest.get("protocolMode") == "BIDI_STREAM" and not dep.use_http_11
                and dep.uri.startswith("http://"))

    async def _open_stream(self, dep: Deployment, path: str, body: bytes,
                           headers: dict[str, str]) -> Stream:
        if self._embedded is not None and self._is_embedded(dep):
            return self._embedded.open_stream(path, headers, body)
        return await self._h2c.open_stream(dep.uri.rstrip("/") + path, body, headers)

    async def _request_response(self, dep: Deployment, path: str, body: bytes, headers: dict[str, str],
                                out: AttemptOutput, timeouts: AttemptTimeouts) -> Effects:
        """The request body is closed at once, so only the abort timeout applies (as in Restate): it
        bounds the response's silence."""
        try:
            status, content = await self._post(dep, path, body, headers, timeouts)
        except LimitExceeded as e:
            return out.over_limit(e)
        except AbortTimeoutFired as e:
            return out.failed(504, str(e))
        except httpx.ReadTimeout:
            return out.failed(504, timeouts.abort_message())
        except (httpx.HTTPError, H2cError) as e:
            return out.failed(503, f"{type(e).__name__} calling {dep.uri}{path}: {e}")
        if status != 200:
            return out.failed(status, answered(status, content))
        try:
            for frame in iter_frames(content):
                final = out.take(frame)
                if final is not None:
                    return final
        except ProtocolError as e:
            return out.violation(e)
        except LimitExceeded as e:
            return out.over_limit(e)
        return out.unterminated()

    async def _post(self, dep: Deployment, path: str, body: bytes, headers: dict[str, str],
                    timeouts: AttemptTimeouts) -> tuple[int, bytes]:
        if self._embedded is not None and self._is_embedded(dep):
            try:  # bounded as it arrives, as over HTTP
                status, _, content = await self._embedded.request("POST", path, headers, body,
                                                                  max_body=self._limits.response_body)
            except LimitExceeded:
                raise
            except Exception as e:  # noqa: BLE001 - the app failed outside the protocol: retry like a 500
                return 500, f"embedded app raised {type(e).__name__}: {e}".encode()
            return status, content
        url = dep.uri.rstrip("/") + path
        if not dep.use_http_11 and url.startswith("http://"):
            # bounded by the client (max_response_bytes), its silence by the abort timeout
            return await self._h2c.post(url, body, headers, RequestWatch(timeouts, self._sweeper))
        # httpx's read timeout bounds each wait for the response's next bytes: the abort timeout
        timeout = httpx.Timeout(self._cfg.attempt_timeout_s, read=timeouts.abort_s)
        async with self._client(dep.use_http_11).stream("POST", url, content=body, headers=headers,
                                                        timeout=timeout) as resp:
            chunks, size = [], 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                self._check_response(size, path)
                chunks.append(chunk)
            return resp.status_code, b"".join(chunks)

    def _check_response(self, size: int, path: str) -> None:
        if size > self._limits.response_body:
            raise LimitExceeded(exceeded(f"the response to {path}", size, self._limits.response_body))

    def _deployment_for(self, row: InvocationStatus) -> Deployment | str:
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

    def _request_body(self, tables: TablesView, row: InvocationStatus) -> bytes:
        inv = row["invocation_id"]
        iid = InvocationId.parse(inv)
        journal = tables.journals.read(inv, row["journal_length"])
        state = tables.state.all(row["service"], row["key"]) if row["key"] is not None else []
        partial = sum(len(k) + len(v) for k, v in state) > self._cfg.eager_state_limit_bytes
        start = pj.start_message(
            id=iid.to_bytes(), debug_id=inv, known_entries=len(journal), state_map=[] if partial else state,
            partial_state=partial, key=row["key"] or "", random_seed=iid.random_seed(),
            retry_count_since_last_stored_entry=row["failures_since_entry"],
            duration_since_last_stored_entry=max(0, now_ms() - row["last_entry_ms"]))
        return start + b"".join(journal)

    def _check_command(self, row: InvocationStatus, frame: Frame, position: str,
                       kinds: dict[str, str]) -> tuple[int, str] | None:
        """Refuse what must not be journaled: writes from a shared handler, calls to unknown targets.

        Returns (code, message) of the terminal failure, or None. Known call targets get their
        handler kind recorded, so apply() can queue exclusive calls behind their object key.
        """
        t = frame.type
        if t in _STATE_WRITES and row["handler_kind"] == "SHARED":
            return 400, (f"{row['service']}/{row['handler']} is a shared handler: it may read state but not "
                         f"write it ({type_name(t)})")
        if t in (MessageType.CALL_COMMAND, MessageType.ONE_WAY_CALL_COMMAND):
            msg = decode_frame(frame)
            svc = self._registry.service(msg.service_name)
            if svc is None:
                return 404, f"call to unknown service '{msg.service_name}' from {row['service']}/{row['handler']}"
            handler = svc.handlers.get(msg.handler_name)
            if handler is None:
                return 404, f"call to unknown handler '{msg.service_name}/{msg.handler_name}'"
            if svc.keyed and not msg.key:
                return 400, f"call to {svc.ty.lower()} '{svc.name}' without a key"
            if handler.ty:
                kinds[position] = handler.ty
        return None

    def _retention_ms(self, row: InvocationStatus) -> int | None:
        """How long the output is kept: a workflow's completion or an idempotent call's retention."""
        if row["handler_kind"] == "WORKFLOW":
            return self._options(row).get("workflowCompletionRetention")
        if row["idempotency_key"]:
            return self._options(row).get("idempotencyRetention")
        return None

    def _journal_retention_ms(self, row: InvocationStatus) -> int | None:
        """How long the journal is kept once the invocation completes: its handler's (or service's)
        journalRetention, None when the manifest and PATCH /services name none (kept with the status).
        A plain invocation's status goes after REPRISE_COMPLETED_RETENTION_S, and its journal with it
        (apply() caps the others' by their completion retention)."""
        journal = self._options(row).get("journalRetention")
        if journal is None:
            return None
        plain = row["handler_kind"] != "WORKFLOW" and row["idempotency_key"] is None
        if plain and self._cfg.completed_retention_s > 0:
            return min(int(journal), int(self._cfg.completed_retention_s * 1000))
        return int(journal)

    def _options(self, row: InvocationStatus) -> dict[str, Any]:
        svc = self._registry.service(row["service"])
        handler = svc.handlers.get(row["handler"]) if svc is not None else None
        return handler.options if handler is not None else {}

    def _retry(self, row: InvocationStatus, code: int, message: str, dep_id: str | None, has_entries: bool,
               entries: list[bytes] | None = None, delay_ms: int | None = None) -> dict[str, Any]:
        """A failed attempt: the next delay, or (out of attempts) what the retry policy says to do."""
        policy = self._cfg.retry.overridden(self._options(row))
        failures = 1 if has_entries else row["failures_since_entry"] + 1
        if delay_ms is None:
            delay_ms = policy.delay_ms(failures)
        out = failed_effects(code, message, retryable=True, deployment_id=dep_id, delay_ms=delay_ms)
        if policy.max_attempts is not None and row["attempt"] >= policy.max_attempts:
            out["outcome"]["on_exhausted"] = policy.on_max_attempts
            log.warning("attempt %s of %s failed (%s %s); out of attempts: %s", row["attempt"],
                        row["invocation_id"], code, message[:200], policy.on_max_attempts)
        else:
            log.info("attempt %s of %s failed (%s %s); retrying in %d ms", row["attempt"], row["invocation_id"],
                     code, message[:200], delay_ms)
        out["entries"] = entries or []
        return out


def _current(store: KeyValueStore, inv: str, attempt: int) -> tuple[TablesView, InvocationStatus | None]:
    """The invocation's row as stored now, or None unless it still awaits this attempt."""
    tables = TablesView(Transaction(store))
    row = tables.invocations.get(inv)
    if row is None or row["status"] != "INVOKED" or row["attempt"] != attempt:
        return tables, None
    return tables, row
