"""Every attempt ends in the log: limits on what a service sends, malformed messages, refused effects
and vanished attempts each end in a record (no broker: the pure core and the leader's parts alone)."""

from __future__ import annotations

from typing import Any

import pytest

from reprise.engine.config import Config
from reprise.engine.limits import FAILURE_MESSAGE_CHARS, LimitExceeded, Limits
from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import Frame, FrameReader, ProtocolError, encode_frame, encode_message, iter_frames
from reprise.engine.protocol.messages import MessageType
from reprise.partitions.core.actions import AbortAttempt
from reprise.partitions.invoker.attempt_output import AttemptOutput, failed_effects
from reprise.partitions.invoker.invoker import Invoker
from reprise.partitions.leader.attempt_guard import AttemptGuard, AttemptWatchdog
from tests.unit.apply_helpers import inv_on, invoke, new_partition, run

LIMITS = Limits(10_000)
ROW = {"invocation_id": "inv_1", "attempt": 1, "failures_since_entry": 0, "handler_kind": None,
       "service": "Steps", "handler": "big"}


def output(limits: Limits = LIMITS) -> AttemptOutput:
    def retry(row: Any, code: int, message: str, *_: Any) -> dict[str, Any]:
        return {"outcome": {"code": code, "message": message, "retryable": True}}
    return AttemptOutput(ROW, "dp_1", lambda *_: None, retry, limits)


def frame(raw: bytes) -> Frame:
    return next(iter_frames(raw))


def proposal(value: bytes, completion_id: int = 1) -> Frame:
    return frame(encode_frame(MessageType.PROPOSE_RUN_COMPLETION, pb.ProposeRunCompletionMessage(
        result_completion_id=completion_id, value=value).SerializeToString()))


# limits on what a service sends ---------------------------------------------------------------------
def test_a_run_result_over_the_entry_limit_fails_the_invocation_terminally_naming_the_limit() -> None:
    out = output()
    final = out.take(proposal(b"a" * 12_000))
    assert final is not None and final["entries"] == []
    outcome = final["outcome"]
    assert outcome["retryable"] is False and outcome["code"] == 500
    assert "a ctx.run result of Steps/big" in outcome["message"]
    assert f"limit of {LIMITS.journal_entry} bytes" in outcome["message"]
    assert "REPRISE_MAX_MESSAGE_BYTES" in outcome["message"]


def test_a_state_value_over_the_entry_limit_names_state() -> None:
    big = encode_message(pb.SetStateCommandMessage(key=b"k", value=pb.Value(content=b"v" * 12_000)))
    final = output().take(frame(big))
    assert final is not None and "a state value" in final["outcome"]["message"]


def test_entries_that_fit_alone_but_not_together_fail_as_the_attempts_output() -> None:
    out = output()
    assert out.take(proposal(b"a" * 4_000, 1)) is None
    assert out.take(proposal(b"a" * 4_000, 2)) is None
    final = out.take(proposal(b"a" * 4_000, 3))
    assert final is not None and final["outcome"]["retryable"] is False
    assert "the output of one attempt of Steps/big" in final["outcome"]["message"]


def test_a_streamed_step_starts_a_fresh_record_so_many_steps_may_exceed_one_record() -> None:
    out = output()
    for i in range(5):  # 5 x 4000 bytes: over one record, but each step is its own Progress record
        assert out.take(proposal(b"a" * 4_000, i + 1)) is None
        assert out.progress()["entries"]


def test_a_frame_over_the_limit_is_refused_from_its_header_before_its_payload_is_buffered() -> None:
    reader = FrameReader(LIMITS.protocol_frame)
    header = encode_frame(MessageType.OUTPUT_COMMAND, b"x" * 20_000)[:8]
    with pytest.raises(LimitExceeded, match="the handler.s output from the service"):
        reader.feed(header)
    assert reader.pending == 8  # the header only: nothing of the payload was waited for


def test_a_failures_message_is_cut_so_its_record_fits() -> None:
    message = failed_effects(500, "e" * (FAILURE_MESSAGE_CHARS * 3), retryable=True, deployment_id=None)
    assert len(message["outcome"]["message"]) < FAILURE_MESSAGE_CHARS + 100


def test_the_limits_derive_from_the_one_setting() -> None:
    limits = Limits(Config().max_message_bytes)
    assert limits.request_body == limits.attempt_output == limits.protocol_frame == 4 * 1024 * 1024
    assert limits.journal_entry < limits.attempt_output < limits.response_body


# malformed protocol messages ------------------------------------------------------------------------
def test_a_malformed_propose_run_completion_is_a_protocol_error_not_a_crash() -> None:
    bad = frame(encode_frame(MessageType.PROPOSE_RUN_COMPLETION, b"\x0a\xff\xff\xff\xff\x0f"))
    with pytest.raises(ProtocolError, match="malformed"):
        output().take(bad)


def test_a_malformed_suspension_is_a_protocol_error() -> None:
    bad = frame(encode_frame(MessageType.SUSPENSION, b"\x0a\xff\xff\xff\xff\x0f"))
    with pytest.raises(ProtocolError):
        output().take(bad)


# effects apply() refuses ----------------------------------------------------------------------------
def _end_attempt(p: Any, inv: str, entries: list[bytes]) -> tuple[list[Any], Any]:
    from reprise.partitions.core.apply import LogRecord, apply_batch
    from reprise.partitions.core.transaction import Transaction
    from reprise.schemas import codec

    p.offset += 1
    rec = {"invocation_id": inv, "attempt": 1, "epoch": 1, "timestamp_ms": 2_000, "deployment_id": "dp_1",
           "entries": entries, "outcome": {}}
    value = codec.decode("InvokerEffects", codec.CURRENT["InvokerEffects"], codec.encode("InvokerEffects", rec))
    tx = Transaction(p.store)
    result = apply_batch(tx, 0, 4, [LogRecord("InvokerEffects", codec.CURRENT["InvokerEffects"], value,
                                              p.offset, 2_000)])
    tx.commit(p.offset)
    return result.actions, result


def test_a_malformed_command_fails_its_attempt_as_a_protocol_violation_and_is_retried() -> None:
    """As Restate retries what it cannot decode from a service (571, with backoff): the attempt fails,
    later records of it are stale, a retry timer runs the next attempt, and a fixed deployment's
    output completes the invocation."""
    from reprise.partitions.core.actions import RunAttempt, ScheduleTimer
    from tests.unit.apply_helpers import output as output_entry

    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    garbage_state_write = encode_frame(MessageType.SET_STATE_COMMAND, b"\x0a\xff\xff\xff\xff\x0f")
    actions, result = _end_attempt(p, inv, [run(1), garbage_state_write])
    assert [r.offset for r in result.rejected] == [p.offset]  # still dead-lettered, for an operator to see
    assert "protocol violation" in result.rejected[0].message
    row = p.status(inv)
    assert row["status"] == "BACKING_OFF" and row["journal_length"] == 1  # the refused entries are not kept
    assert row["last_failure"]["code"] == 571 and "could not apply attempt 1" in row["last_failure"]["message"]
    assert row["failures_since_entry"] == 1 and row["next_retry_ms"] == 2_000 + 500
    assert AbortAttempt(inv, 1) in actions
    timers = [a for a in actions if isinstance(a, ScheduleTimer)]
    assert [t.fire_at_ms for t in timers] == [2_500]
    assert not any(type(a).__name__ == "ShipOutbox" for a in actions)  # no reply: it is not over

    p.effects(inv, 1, [output_entry(b'"late"')], {})  # the refused attempt's later record: stale
    assert p.status(inv)["status"] == "BACKING_OFF"

    assert p.feed("TimerFired", {"timer_key": timers[0].timer_key, "epoch": 1, "timestamp_ms": 2_500}) == \
        [RunAttempt(inv, 2)]
    p.effects(inv, 2, [output_entry(b'"fixed"')], {})  # the deployment, fixed, answers well
    row = p.status(inv)
    assert row["status"] == "COMPLETED" and row["result_value"] == b'"fixed"' and row["result_failure"] is None


def test_a_violation_that_persists_backs_off_longer_each_time() -> None:
    from reprise.partitions.core.actions import ScheduleTimer

    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    garbage = encode_frame(MessageType.SET_STATE_COMMAND, b"\x0a\xff\xff\xff\xff\x0f")
    delays = []
    for attempt in (1, 2, 3):
        p.offset += 1
        actions = p.effects(inv, attempt, [garbage], {}, ts=10_000 * attempt)
        (timer,) = [a for a in actions if isinstance(a, ScheduleTimer)]
        delays.append(timer.fire_at_ms - 10_000 * attempt)
        p.feed("TimerFired", {"timer_key": timer.timer_key, "epoch": 1, "timestamp_ms": timer.fire_at_ms})
    assert delays == [500, 1_000, 2_000]
    assert p.status(inv)["status"] == "INVOKED" and p.status(inv)["attempt"] == 4


def test_output_past_a_bound_still_fails_its_invocation_terminally() -> None:
    """What a retry would produce again (a suspension on more ids than any attempt may await) ends the
    invocation with a failure that says why."""
    from reprise.partitions.core.apply.validation import MAX_AWAITED

    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    actions = p.effects(inv, 1, [run(1)], {"completions": list(range(MAX_AWAITED + 1)), "signals": [],
                                           "named_signals": []})
    row = p.status(inv)
    assert row["status"] == "COMPLETED" and row["journal_length"] == 1  # the input only: nothing refused is kept
    assert row["result_failure"]["code"] == 500 and "could not apply attempt 1" in row["result_failure"]["message"]
    assert AbortAttempt(inv, 1) in actions
    assert any(type(a).__name__ == "ShipOutbox" for a in actions)  # the client's reply is on its way


def test_a_bogus_caller_is_refused_before_an_invocation_exists() -> None:
    """A Kafka-native Invoke naming a malformed caller is refused when it is applied (its kind's checks,
    partitions/core/apply/validation.py), so no invocation is left that could not tell its caller it ended."""
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv, caller={"invocation_id": "inv_1bogus", "completion_id": 1})
    assert not any(k.startswith(b"in/") for k in p.store.data)  # refused: no invocation row
    invoke(p, inv)
    assert p.status(inv)["status"] == "INVOKED"  # the same id, well formed, is then accepted


def test_refused_effects_fail_their_invocation_the_same_way_on_replay() -> None:
    def scenario() -> dict[bytes, bytes]:
        p = new_partition()
        inv = inv_on(0)
        invoke(p, inv)
        _end_attempt(p, inv, [encode_frame(MessageType.SET_STATE_COMMAND, b"\x0a\xff\xff\xff\xff\x0f")])
        return dict(p.store.data)
    assert scenario() == scenario()


# the leader's side: refused records and the watchdog ------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_watchdog_waits_its_bound_before_re_driving_and_forgets_live_or_moved_attempts() -> None:
    clock = Clock()
    dog = AttemptWatchdog(10, clock)
    stuck, live = (0, "inv_a", 1), (0, "inv_b", 1)
    alive = {("inv_b", 1)}

    def sweep(*keys: tuple[int, str, int]) -> list[tuple[int, str, int]]:
        return dog.sweep(keys, lambda inv, attempt: (inv, attempt) in alive)

    assert sweep(stuck, live) == []
    clock.now += 9
    assert sweep(stuck, live) == []
    clock.now += 2
    assert sweep(stuck, live) == [stuck]  # unattended for 11 s
    assert sweep(stuck, live) == []  # forgotten once re-driven: the bound starts again
    moved = (0, "inv_a", 2)  # its next attempt: a different attempt starts from zero
    clock.now += 30
    assert sweep(moved) == []


class FakeLoop:
    def __init__(self) -> None:
        self.later: list[Any] = []

    def call_later(self, delay: float, fn: Any, *args: Any) -> Any:
        self.later.append(fn)
        return None

    def call_soon_threadsafe(self, fn: Any, *args: Any) -> None:
        fn(*args)


class NoRegistry:
    def service(self, name: str) -> None:
        return None


def leader(p: Any, bound_s: float = 10) -> tuple[AttemptGuard, Invoker, list[dict[str, Any]], Clock, FakeLoop]:
    emitted: list[dict[str, Any]] = []
    invoker = Invoker(Config(), NoRegistry(), lambda partition, effects: emitted.append(effects))  # type: ignore[arg-type]
    clock, loop = Clock(), FakeLoop()
    guard = AttemptGuard(invoker, loop, {0: p.store}, {0}, {0: 1}, bound_s, clock)  # type: ignore[arg-type]
    return guard, invoker, emitted, clock, loop


def test_an_attempt_that_vanished_is_failed_after_the_bound_and_runs_again() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)  # INVOKED attempt 1; the leader never runs it (as if its task vanished)
    guard, _, emitted, clock, loop = leader(p)
    guard.start()
    loop.later.pop()()  # the first sweep: noticed
    assert emitted == []
    clock.now += 11
    loop.later.pop()()  # past the bound: failed, so that its policy runs it again
    assert len(emitted) == 1
    effects = emitted[0]
    assert (effects["invocation_id"], effects["attempt"], effects["epoch"]) == (inv, 1, 1)
    assert effects["outcome"]["retryable"] is True and "REPRISE_ATTEMPT_WATCHDOG_S" in effects["outcome"]["message"]
    p.feed("InvokerEffects", effects)  # through apply: backing off, a retry timer set
    assert p.status(inv)["status"] == "BACKING_OFF"
    assert loop.later  # the watchdog goes on


def test_a_live_attempt_is_left_alone_by_the_watchdog() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    guard, invoker, emitted, clock, loop = leader(p)
    invoker._running.add((inv, 1))  # an attempt runs (or waits for a slot) in this process
    guard.start()
    for _ in range(3):
        loop.later.pop()()
        clock.now += 11
    assert emitted == []


def test_an_effects_record_kafka_refuses_becomes_a_failure_record_of_its_attempt() -> None:
    from confluent_kafka import KafkaError

    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    guard, _, emitted, _, _ = leader(p)
    guard.delivery(0, inv, 1)(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large"), None)
    assert len(emitted) == 1 and emitted[0]["outcome"]["retryable"] is False
    guard.delivery(0, inv, 1)(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "again"), None)
    assert len(emitted) == 1  # its failure record refused too: left to the watchdog, no tight loop
    p.feed("InvokerEffects", emitted[0])
    assert p.status(inv)["status"] == "COMPLETED"
    assert guard.delivery(0, inv, 1)(None, None) is None  # delivered: nothing to do


def test_an_attempt_task_that_crashes_ends_in_a_failure_record_not_in_silence() -> None:
    import asyncio

    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    _, invoker, emitted, _, _ = leader(p)

    async def broken(*_: Any) -> None:
        raise KeyError("a bug in the engine")

    async def go() -> None:
        invoker._run = broken  # type: ignore[method-assign]
        invoker.start(0, p.store, 1, inv, 1)
        await asyncio.gather(*list(invoker._tasks))
    asyncio.run(go())
    assert len(emitted) == 1 and emitted[0]["outcome"]["retryable"] is True
    assert "KeyError" in emitted[0]["outcome"]["message"]
    p.feed("InvokerEffects", emitted[0])
    assert p.status(inv)["status"] == "BACKING_OFF"
