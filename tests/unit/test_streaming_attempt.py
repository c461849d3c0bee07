"""LiveAttempt, the streaming attempt's driver, against a scripted stream (no network, no broker)."""

from __future__ import annotations

import asyncio
from typing import Any

from reprise.engine.limits import Limits
from reprise.engine.protocol import journal as pj
from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import encode_frame, encode_message
from reprise.engine.protocol.messages import MessageType
from reprise.partitions.invoker.attempt_output import AttemptOutput
from reprise.partitions.invoker.attempt_timeouts import AttemptTimeouts, TimeoutSweeper
from reprise.partitions.invoker.h2c import H2cError, Inbox
from reprise.partitions.invoker.streaming import LiveAttempt


class ScriptedStream:
    """What the deployment sends is pushed by the test; what the engine sends is recorded."""

    url = "http://svc/invoke/S/h"

    def __init__(self) -> None:
        self.status = 200
        self.ended = False
        self.was_reset = False
        self.sent: list[bytes] = []
        self.chunks = Inbox()
        self.chunks.put(b"")  # the response headers

    def send(self, data: bytes) -> None:
        if not self.ended:
            self.sent.append(data)

    def end(self) -> None:
        self.ended = True

    def reset(self) -> None:
        self.ended = self.was_reset = True
        self.chunks.put(H2cError("reset"))

    async def read(self, timeout_s: float | None) -> bytes | None:
        return await self.chunks.get(timeout_s)


ROW = {"invocation_id": "inv_1", "attempt": 1, "failures_since_entry": 0, "handler_kind": None}
RUN = encode_message(pb.RunCommandMessage(result_completion_id=1, name="a"))
PROPOSE = encode_frame(MessageType.PROPOSE_RUN_COMPLETION,
                       pb.ProposeRunCompletionMessage(result_completion_id=1, value=b'"A"').SerializeToString())
DONE = pj.run_completion_from_proposal(pb.ProposeRunCompletionMessage(result_completion_id=1,
                                                                      value=b'"A"').SerializeToString())
SLEEP = encode_message(pb.SleepCommandMessage(wake_up_time=10**13, result_completion_id=2))
OUTPUT = encode_message(pb.OutputCommandMessage(value=pb.Value(content=b'"A"')))
END = encode_message(pb.EndMessage())


def live_attempt(known_entries: int, inactivity_s: float) -> LiveAttempt:
    """Watched by a sweep every 10 ms (the invoker's sweeps less often)."""
    return LiveAttempt(known_entries, AttemptTimeouts(inactivity_s, 5.0), TimeoutSweeper(0.01))


def output() -> AttemptOutput:
    def retry(row: Any, code: int, message: str, *_: Any) -> dict[str, Any]:
        return {"outcome": {"code": code, "message": message, "retryable": True}}
    return AttemptOutput(ROW, "dp_1", lambda *_: None, retry, Limits(4 * 1024 * 1024))


async def until(check: Any) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def test_a_run_is_journaled_then_its_result_streamed_and_the_attempt_goes_on() -> None:
    async def go() -> None:
        stream, progress = ScriptedStream(), []
        live = live_attempt(1, 0.05)
        task = asyncio.create_task(live.run(lambda: _ready(stream), output(), progress.append))
        stream.chunks.put(RUN + PROPOSE)
        await until(lambda: progress)
        assert progress[0]["entries"] == [RUN, DONE] and progress[0]["outcome"] == {"proposed": [1]}
        await asyncio.sleep(0.2)  # four idle periods: a run's result is on its way, so the input stays open
        assert not stream.ended
        live.deliver(0, DONE)  # below the journal the request carried: the handler has it
        live.deliver(2, DONE)  # index 1 is the RunCommand, 2 its result
        live.deliver(2, DONE)  # a repeat (the same index again) is not sent twice
        assert stream.sent == [DONE]
        stream.chunks.put(OUTPUT + END)
        final = await task
        assert final["entries"] == [OUTPUT] and final["outcome"] == {} and stream.ended
    asyncio.run(go())


def test_silence_with_nothing_on_its_way_ends_the_input_so_the_handler_suspends() -> None:
    async def go() -> None:
        stream, progress = ScriptedStream(), []
        live = live_attempt(1, 0.05)
        task = asyncio.create_task(live.run(lambda: _ready(stream), output(), progress.append))
        stream.chunks.put(SLEEP)  # the runtime must make the timer: journaled at once
        await until(lambda: progress)
        await until(lambda: stream.ended)  # a long sleep: the handler is told no more input comes
        live.deliver(3, DONE)  # too late: the input is closed, the next attempt replays it
        assert stream.sent == []
        stream.chunks.put(encode_message(pb.SuspensionMessage(waiting_completions=[2])))
        final = await task
        assert final["outcome"]["completions"] == [2] and final["entries"] == []
    asyncio.run(go())


def test_notifications_before_the_stream_opens_follow_the_request_and_old_ones_are_skipped() -> None:
    async def go() -> None:
        stream = ScriptedStream()
        live = live_attempt(3, 1)
        live.deliver(2, b"old")  # already in the journal the request carried
        live.deliver(3, b"new")
        task = asyncio.create_task(live.run(lambda: _ready(stream), output(), lambda _: None))
        await until(lambda: stream.sent)
        assert stream.sent == [b"new"]
        stream.chunks.put(END)
        assert (await task)["outcome"] == {}
    asyncio.run(go())


def test_an_aborted_attempt_returns_nothing_and_a_broken_stream_fails_with_its_entries() -> None:
    async def go() -> None:
        stream = ScriptedStream()
        live = live_attempt(1, 1)
        task = asyncio.create_task(live.run(lambda: _ready(stream), output(), lambda _: None))
        await until(lambda: live.stream is not None)
        live.abort()
        assert await task is None and stream.ended

        stream = ScriptedStream()
        live = live_attempt(1, 1)
        live.abort()  # before its stream is open: the request is reset, not left to run its handler
        assert await live.run(lambda: _ready(stream), output(), lambda _: None) is None
        assert stream.was_reset and stream.sent == []

        stream = ScriptedStream()
        live = live_attempt(1, 1)
        task = asyncio.create_task(live.run(lambda: _ready(stream), output(), lambda _: None))
        stream.chunks.put(OUTPUT)
        stream.chunks.put(H2cError("connection lost"))
        failed = await task
        assert failed["outcome"]["code"] == 503 and "connection lost" in failed["outcome"]["message"]
    asyncio.run(go())


async def _ready(stream: ScriptedStream) -> ScriptedStream:
    return stream


def test_a_streamed_attempt_cuts_its_records_where_the_next_entry_would_not_fit() -> None:
    """Writes that need nothing from the runtime are gathered; past one record's limit they go out
    as a Progress record and the attempt goes on (request/response would fail it: one record)."""
    from reprise.engine.limits import Limits

    def retry(row: Any, code: int, message: str, *_: Any) -> dict[str, Any]:
        return {"outcome": {"code": code, "message": message, "retryable": True}}

    async def go() -> None:
        stream, progress = ScriptedStream(), []
        out = AttemptOutput({**ROW, "service": "S", "handler": "h"}, "dp_1", lambda *_: None, retry, Limits(10_000))
        live = live_attempt(1, 1)
        task = asyncio.create_task(live.run(lambda: _ready(stream), out, progress.append))
        sets = [encode_message(pb.SetStateCommandMessage(key=b"k", value=pb.Value(content=b"v" * 4_000)))
                for _ in range(3)]
        stream.chunks.put(b"".join(sets) + OUTPUT + END)
        final = await task
        assert final["outcome"] == {} and final["entries"] == [sets[2], OUTPUT]
        assert [p["entries"] for p in progress] == [sets[:2]]
    asyncio.run(go())


def test_a_malformed_run_proposal_fails_the_attempt_as_a_protocol_violation_to_retry() -> None:
    async def go() -> None:
        stream = ScriptedStream()
        live = live_attempt(1, 1)
        task = asyncio.create_task(live.run(lambda: _ready(stream), output(), lambda _: None))
        stream.chunks.put(RUN + encode_frame(MessageType.PROPOSE_RUN_COMPLETION, b"\x0a\xff\xff\xff\xff\x0f"))
        final = await asyncio.wait_for(task, 10)
        assert final["outcome"]["code"] == 571 and final["outcome"]["retryable"] is True
        assert "malformed" in final["outcome"]["message"] and stream.was_reset
    asyncio.run(go())
