"""The replay check: run a recorded journal against new code and say where the code diverged from it.

One request per invocation, as an attempt's but with nothing after it: ``StartMessage`` with every
recorded entry as a known entry, the entries, and the request body closed. The SDK replays: every
command the new code emits is compared by the SDK itself with the recorded one at that position, and
the first that differs fails the attempt with Restate's journal-mismatch error (570) naming the
command's index. Completions come from the journal, so no ``ctx.run`` closure runs while replaying;
the response goes nowhere (nothing is written to Kafka).

The new code must not go past the recorded journal either (a step after it would run its closure).
So the journal of an invocation in flight gets one more known entry, a command no handler can emit
(``REPLAY_END_NAME``): the SDK compares the new code's next command with it and stops there with a
mismatch at that index, which this module reports as a clean end of the recording. A handler that
instead waits at the end of its recording for a result not journaled yet meets the unread marker
there (the SDK calls that a mismatch too); it is replayed once more without the marker, along the
same path of matched commands, and then suspends (the body is closed): clean. Unless a step of the
recording is still in flight: without the marker the SDK would run it, so that case is reported as
not replayable rather than replayed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

from reprise.engine.discovery import PROTOCOL_VERSION, http_client
from reprise.engine.ids import InvocationId
from reprise.engine.protocol import journal as pj
from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import ProtocolError, decode_frame, encode_message, iter_frames
from reprise.engine.protocol.messages import MessageType, is_command
from reprise.partitions.invoker.embedded import SCHEME as EMBEDDED_SCHEME
from reprise.partitions.invoker.embedded import EmbeddedApp

CONTENT_TYPE = f"application/vnd.restate.invocation.v{PROTOCOL_VERSION}"
JOURNAL_MISMATCH = 570
AWAIT_MISMATCH = "'await' could not be replayed"  # the SDK's words for awaiting a result the journal lacks
REPLAY_END_NAME = "reprise.replay.end"  # the name of the end-of-recording command: no handler emits it


@dataclass
class ReplayResult:
    """One invocation's verdict: ``ok``, ``diverged`` (at ``entry``) or ``error`` (could not replay)."""

    invocation_id: str
    target: str
    status: str
    verdict: str
    entry: int | None = None  # the journal entry (commands and notifications counted) where it diverged
    command_index: int | None = None  # the same position counted in commands, as the SDK names it
    recorded: dict[str, Any] | None = None  # the recorded entry at that position
    message: str = ""
    side_effects: list[str] = field(default_factory=list)  # closures that ran anyway (should stay empty)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def replay_end_command() -> bytes:
    """A command no handler emits: compared with whatever the new code does after the recording."""
    return encode_message(pb.GetInvocationOutputCommandMessage(
        invocation_id="inv_" + "0" * 24 + "replayend", result_completion_id=0xFFFFFFFF, name=REPLAY_END_NAME))


def request_body(invocation_id: str, key: str | None, journal: list[bytes], end_marker: bool) -> bytes:
    """StartMessage and the recorded entries (plus the end marker, for an invocation in flight).

    No eager state: every state read is in the journal, and one past it would suspend."""
    entries = journal + [replay_end_command()] if end_marker else journal
    iid = InvocationId.parse(invocation_id)
    start = pj.start_message(id=iid.to_bytes(), debug_id=invocation_id, known_entries=len(entries), state_map=[],
                             partial_state=True, key=key or "", random_seed=iid.random_seed(),
                             retry_count_since_last_stored_entry=0, duration_since_last_stored_entry=0)
    return start + b"".join(entries)


def command_position(journal: list[bytes], command_index: int) -> int | None:
    """The journal index of the ``command_index``-th command (0-based; the input is command 0)."""
    seen = -1
    for i, raw in enumerate(journal):
        if is_command(pj.frame_type(raw)):
            seen += 1
            if seen == command_index:
                return i
    return None


def pending_runs(journal: list[bytes]) -> list[int]:
    """The positions of the runs whose completion is not journaled (steps in flight when it was recorded)."""
    done = {pj.notification_id(e)[1] for e in journal if pj.frame_type(e) == MessageType.RUN_COMPLETION}
    return [i for i, e in enumerate(journal)
            if pj.frame_type(e) == MessageType.RUN_COMMAND and pj.decode(e).result_completion_id not in done]


def judge(invocation_id: str, target: str, status: str, journal: list[bytes], response: bytes) -> ReplayResult:
    """Read the SDK's answer to a replay request."""
    result = ReplayResult(invocation_id, target, status, "ok")
    try:
        frames = list(iter_frames(response))
    except ProtocolError as e:
        result.verdict, result.message = "error", f"malformed response: {e}"
        return result
    for frame in frames:
        if frame.type == MessageType.PROPOSE_RUN_COMPLETION:
            msg = decode_frame(frame)
            result.side_effects.append(f"run completion {msg.result_completion_id}")
        elif frame.type == MessageType.ERROR:
            return _error(result, journal, decode_frame(frame))
        elif frame.type in (MessageType.END, MessageType.SUSPENSION):
            return result
    result.verdict, result.message = "error", "the response ended without End, Suspension or Error"
    return result


def _error(result: ReplayResult, journal: list[bytes], err: Any) -> ReplayResult:
    index = err.related_command_index if err.HasField("related_command_index") else None
    if err.code != JOURNAL_MISMATCH:
        result.verdict = "error"
        result.message = f"the new code failed while replaying: {err.code} {err.message}"
        return result
    position = command_position(journal, index) if index is not None else None
    if index is not None and position is None:
        return result  # the mismatch is at the end marker: the new code replayed the whole recording
    result.verdict, result.command_index, result.entry = "diverged", index, position
    result.message = err.message
    if position is not None:
        result.recorded = {"index": position, **pj.describe(journal[position])}
    return result


class ReplayTarget:
    """The deployment of the new code: ``http://…`` (h2c, or HTTP/1.1 with ``http1``) or ``embedded://module:app``."""

    def __init__(self, uri: str, http1: bool = False, timeout_s: float = 60.0) -> None:
        self.uri = uri.rstrip("/")
        self._embedded = EmbeddedApp(uri[len(EMBEDDED_SCHEME):], threads=1) if uri.startswith(EMBEDDED_SCHEME) else None
        self._client = None if self._embedded is not None else http_client(http1, timeout_s)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self._embedded is not None:
            status, _, content = await self._embedded.request("POST", path, headers, body)
            return status, content
        assert self._client is not None
        resp = await self._client.post(self.uri + path, content=body, headers=headers)
        return resp.status_code, resp.content

    async def replay(self, invocation_id: str, service: str, handler: str, key: str | None, status: str,
                     journal: list[bytes]) -> ReplayResult:
        target = f"{service}/{key + '/' if key else ''}{handler}"
        headers = {"content-type": CONTENT_TYPE, "accept": CONTENT_TYPE, "x-restate-invocation-id": invocation_id}
        if key is not None:
            headers["x-restate-service-key"] = quote(key, safe="")
        path = f"/invoke/{service}/{handler}"
        in_flight = status != "COMPLETED"
        result = await self._once(path, invocation_id, target, status, key, journal, headers, in_flight)
        if in_flight and result.verdict == "diverged" and AWAIT_MISMATCH in result.message:
            # It awaited a result the journal lacks while the end marker was still unread: either the
            # recording stops at that await (clean), or commands the new code skipped remain (diverged).
            pending = pending_runs(journal)
            if result.entry is not None and result.entry in pending:
                # The recording stops inside this step (its closure was running): a resume runs it again.
                return ReplayResult(invocation_id, target, status, "ok")
            if pending:  # replaying on without the marker would let the SDK run that step's closure
                return ReplayResult(invocation_id, target, status, "error", message=(
                    f"the recording stops with a step in flight (entry {pending[0]}) while the new code waits "
                    "elsewhere: it cannot be replayed further without running that step"))
            # Without the marker the same path (every command on it matched a recorded one, so no
            # closure runs) reaches the same await, and suspends if it consumed the whole recording.
            result = await self._once(path, invocation_id, target, status, key, journal, headers, False)
        return result

    async def _once(self, path: str, invocation_id: str, target: str, status: str, key: str | None,
                    journal: list[bytes], headers: dict[str, str], end_marker: bool) -> ReplayResult:
        body = request_body(invocation_id, key, journal, end_marker)
        try:
            code, content = await self.post(path, body, headers)
        except Exception as e:  # noqa: BLE001 - any failure to reach the code is this invocation's verdict
            return ReplayResult(invocation_id, target, status, "error", message=f"{type(e).__name__}: {e}")
        if code != 200:
            return ReplayResult(invocation_id, target, status, "error",
                                message=f"{self.uri} answered {code}: {content[:300].decode(errors='replace')}")
        return judge(invocation_id, target, status, journal, content)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._embedded is not None:
            self._embedded.close()
