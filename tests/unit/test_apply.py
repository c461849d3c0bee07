"""apply() fed record sequences: store contents and actions, no broker, no clock."""

from __future__ import annotations

from reprise.engine.ids import InvocationId
from reprise.engine.protocol import journal as pj
from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import encode_frame, encode_message
from reprise.engine.protocol.messages import MessageType
from reprise.partitions.core.actions import RunAttempt, ScheduleTimer, ShipOutbox
from reprise.partitions.core.apply import LogRecord, Rejected, apply_batch
from reprise.partitions.core.errors import Rejection
from reprise.partitions.core.transaction import Transaction, applied_offset
from reprise.schemas import codec
from tests.unit.apply_helpers import (
    N,
    inv_on,
    invoke,
    new_partition,
    outbox_records,
    output,
    run,
    run_done,
    suspended,
)


def test_invoke_creates_journal_and_asks_for_attempt_one() -> None:
    p = new_partition()
    inv = inv_on(0)
    assert invoke(p, inv) == [RunAttempt(inv, 1)]
    row = p.status(inv)
    assert (row["status"], row["attempt"], row["journal_length"]) == ("INVOKED", 1, 1)
    assert pj.frame_type(p.tables.journals.entry(inv, 0)) == MessageType.INPUT_COMMAND
    assert list(p.tables.invocations.invoked_ids()) == [inv]
    assert applied_offset(p.store) == p.offset


def test_duplicate_invoke_changes_nothing() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    before = dict(p.store.data)
    assert invoke(p, inv) == []
    before.pop(b"meta/applied_offset")
    after = dict(p.store.data)
    after.pop(b"meta/applied_offset")
    assert after == before


def test_same_invocation_again_attaches_then_gets_the_stored_result() -> None:
    """What an idempotency key gives: one execution, every requester gets its result."""
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    second = {"topic": "replies", "ingress_id": "other", "request_id": "r2"}
    assert invoke(p, inv, reply_to=second) == []
    assert p.status(inv)["attached_replies"] == [second]
    assert len(p.effects(inv, 1, [output(b'"one"')], {})) == 2  # a reply to each requester
    replies = [r for k, r in outbox_records(p) if k == "Reply"]
    assert sorted(r["ingress_id"] for r in replies) == ["ing", "other"]
    caller = {"invocation_id": inv_on(2), "completion_id": 4}
    assert invoke(p, inv, reply_to=None, caller=caller) == [ShipOutbox(2)]
    kind, done = outbox_records(p)[-1]
    assert kind == "CallCompleted" and done["value"] == b'"one"' and done["completion_id"] == 4
    assert p.status(inv)["attempt"] == 1  # it ran once


def test_run_completion_in_the_same_attempt_resumes_at_once() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    actions = p.effects(inv, 1, [run(1), run_done(1, b'"A"')], suspended(1))
    assert actions == [RunAttempt(inv, 2)]
    row = p.status(inv)
    assert (row["status"], row["attempt"], row["journal_length"], row["completed_ids"]) == ("INVOKED", 2, 3, [1])


def test_end_completes_and_replies_through_the_outbox() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    actions = p.effects(inv, 1, [output(b'"done"')], {})
    assert actions == [ShipOutbox(0)]
    row = p.status(inv)
    assert (row["status"], row["result_value"], row["result_failure"]) == ("COMPLETED", b'"done"', None)
    [(kind, reply)] = outbox_records(p)
    assert kind == "Reply" and reply["value"] == b'"done"' and reply["request_id"] == inv
    assert reply["source"] == {"partition": 0, "seq": 0}
    assert list(p.tables.invocations.invoked_ids()) == []


def test_terminal_failure_output_is_the_result() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    fail = encode_message(pb.OutputCommandMessage(failure=pb.Failure(code=400, message="bad seat")))
    p.effects(inv, 1, [fail], {})
    assert p.status(inv)["result_failure"] == {"code": 400, "message": "bad seat"}


def test_retryable_failure_backs_off_with_a_timer_then_retries() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    actions = p.effects(inv, 1, [], {"code": 500, "message": "boom", "retryable": True, "next_retry_delay_ms": 250},
                        ts=5_000)
    [timer] = actions
    assert isinstance(timer, ScheduleTimer) and timer.fire_at_ms == 5_250
    row = p.status(inv)
    assert (row["status"], row["failures_since_entry"], row["last_failure"]["message"]) == ("BACKING_OFF", 1, "boom")
    assert p.feed("TimerFired", {"timer_key": timer.timer_key, "epoch": 1, "timestamp_ms": 5_250}) == \
        [RunAttempt(inv, 2)]
    assert p.feed("TimerFired", {"timer_key": timer.timer_key, "epoch": 1, "timestamp_ms": 5_251}) == []
    assert "already fired" in p.dropped[-1]


def test_non_retryable_failure_completes_with_it() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    p.effects(inv, 1, [], {"code": 404, "message": "Service 'Svc' not found", "retryable": False,
                           "next_retry_delay_ms": None})
    row = p.status(inv)
    assert row["status"] == "COMPLETED" and row["result_failure"]["code"] == 404


def test_sleep_suspends_until_its_timer_fires() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    sleep = encode_message(pb.SleepCommandMessage(wake_up_time=9_000, result_completion_id=1))
    [timer] = p.effects(inv, 1, [sleep], suspended(1))
    assert timer.fire_at_ms == 9_000 and p.status(inv)["status"] == "SUSPENDED"
    assert p.feed("TimerFired", {"timer_key": timer.timer_key, "epoch": 1, "timestamp_ms": 9_000}) == \
        [RunAttempt(inv, 2)]
    assert pj.frame_type(p.tables.journals.entry(inv, 2)) == MessageType.SLEEP_COMPLETION
    assert list(p.tables.timers.all()) == []


def test_effects_from_a_stale_attempt_or_epoch_are_ignored() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    assert p.effects(inv, 7, [output(b"1")], {}) == []
    assert "expected INVOKED attempt 7" in p.dropped[-1]
    assert p.effects(inv, 1, [output(b"1")], {}, epoch=0) == []
    assert "expected epoch 1, found 0" in p.dropped[-1]
    assert p.status(inv)["status"] == "INVOKED"
    p.feed("LeaderEpoch", {"partition": 0, "epoch": 2, "owner": "other", "timestamp_ms": 0})
    assert p.effects(inv, 1, [output(b"1")], {}, epoch=1) == []
    assert p.effects(inv, 1, [output(b"1")], {}, epoch=2) == [ShipOutbox(0)]


def test_older_leader_epoch_is_refused() -> None:
    p = new_partition()
    p.feed("LeaderEpoch", {"partition": 0, "epoch": 1, "owner": "late", "timestamp_ms": 0})
    assert p.tables.leadership.epoch() == 1 and "expected above 1" in p.dropped[-1]


def test_call_creates_child_through_outbox_and_result_resumes_caller() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    call = encode_message(pb.CallCommandMessage(service_name="Other", handler_name="go", parameter=b'"p"',
                                                invocation_id_notification_idx=1, result_completion_id=2))
    actions = p.effects(inv, 1, [call], suspended(2))
    assert actions == [ShipOutbox(0)]
    row = p.status(inv)
    assert row["status"] == "SUSPENDED" and row["completed_ids"] == [1]  # the id notification is there
    [(kind, child)] = outbox_records(p)
    assert kind == "Invoke" and child["service"] == "Other" and child["input"] == b'"p"'
    assert child["caller"] == {"invocation_id": inv, "completion_id": 2}
    child_id = pj.decode(p.tables.journals.entry(inv, 2)).invocation_id
    assert child["invocation_id"] == child_id
    done = {"invocation_id": inv, "completion_id": 2, "value": b'"r"', "source": {"partition": 3, "seq": 0}}
    assert p.feed("CallCompleted", done) == [RunAttempt(inv, 2)]
    assert p.feed("CallCompleted", done) == []  # a re-shipped copy
    assert "already applied" in p.dropped[-1]
    assert p.status(inv)["journal_length"] == 4


def test_child_completion_goes_to_the_callers_partition() -> None:
    p = new_partition()
    caller = inv_on(2)
    child = inv_on(0)
    p.feed("Invoke", {"invocation_id": child, "service": "Other", "handler": "go", "input": b"",
                      "caller": {"invocation_id": caller, "completion_id": 5},
                      "source": {"partition": 2, "seq": 0}})
    p.effects(child, 1, [output(b'"r"')], {})
    [seq] = p.tables.outbox.pending()
    entry = p.tables.outbox.entry(seq)
    assert (entry["kind"], entry["topic"], entry["partition"]) == ("CallCompleted", "log", 2)


def test_duplicated_outbox_invoke_is_applied_once() -> None:
    p = new_partition()
    rec = {"invocation_id": inv_on(0), "service": "S", "handler": "h", "input": b"",
           "source": {"partition": 1, "seq": 4}}
    assert len(p.feed("Invoke", rec)) == 1
    assert p.feed("Invoke", {**rec, "invocation_id": inv_on(1)}) == []


def test_delayed_invoke_is_scheduled_then_started() -> None:
    p = new_partition()
    inv = inv_on(0)
    [timer] = invoke(p, inv, execute_at_ms=60_000)
    assert isinstance(timer, ScheduleTimer) and p.status(inv)["status"] == "SCHEDULED"
    assert p.feed("TimerFired", {"timer_key": timer.timer_key, "epoch": 1, "timestamp_ms": 60_000}) == \
        [RunAttempt(inv, 1)]


def test_state_commands_apply_when_journaled() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv, key="k3")
    set_a = encode_message(pb.SetStateCommandMessage(key=b"a", value=pb.Value(content=b"1")))
    set_b = encode_message(pb.SetStateCommandMessage(key=b"b", value=pb.Value(content=b"2")))
    clear_a = encode_message(pb.ClearStateCommandMessage(key=b"a"))
    p.effects(inv, 1, [set_a, set_b, clear_a, run(1)], suspended(1))
    assert p.tables.state.all("Svc", "k3") == [(b"b", b"2")]
    p.effects(inv, 1, [encode_frame(MessageType.CLEAR_ALL_STATE_COMMAND, b"")], suspended(1))
    assert p.tables.state.all("Svc", "k3") == [(b"b", b"2")]  # stale attempt: ignored


def test_outbox_shipped_truncates() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    p.effects(inv, 1, [output(b"1")], {})
    assert p.tables.outbox.pending() == [0]
    p.feed("OutboxShipped", {"epoch": 1, "up_to_seq": 0})
    assert p.tables.outbox.pending() == []
    ids = (InvocationId.derived(f"o{n}", "test", n) for n in range(1000))
    for other in [str(i) for i in ids if i.partition(N) == 0][:2]:
        invoke(p, other)
        p.effects(other, 1, [output(b"2")], {})
    assert p.tables.outbox.pending() == [1, 2]
    p.feed("OutboxShipped", {"epoch": 1, "up_to_seq": 1})
    assert p.tables.outbox.pending() == [2]  # from the head on, past the deleted entries


def test_invoke_without_id_derives_a_deterministic_one_on_this_partition() -> None:
    a, b = new_partition(), new_partition()
    rec = {"service": "S", "handler": "h", "input": b"", "key": None}
    a.feed("Invoke", rec)
    b.feed("Invoke", rec)
    [ka] = [k for k in a.store.data if k.startswith(b"in/")]
    [kb] = [k for k in b.store.data if k.startswith(b"in/")]
    assert ka == kb and InvocationId.parse(ka[3:].decode()).partition(N) == 0


def test_replaying_the_same_records_gives_the_same_bytes() -> None:
    """Invariant 1 (docs/architecture.md) in miniature: the store is a function of the log."""
    def scenario() -> dict[bytes, bytes]:
        p = new_partition()
        inv = inv_on(0)
        invoke(p, inv)
        p.effects(inv, 1, [run(1), run_done(1, b'"A"')], suspended(1))
        p.effects(inv, 2, [], {"code": 500, "message": "x", "retryable": True, "next_retry_delay_ms": 5})
        key = next(iter(p.tables.timers.all()))[0]
        p.feed("TimerFired", {"timer_key": key, "epoch": 1, "timestamp_ms": 3_000})
        p.effects(inv, 3, [output(b'"ok"')], {})
        return p.store.data
    assert scenario() == scenario()


def test_unknown_kind_is_rejected_not_fatal() -> None:
    p = new_partition()
    tx = Transaction(p.store)
    result = apply_batch(tx, 0, N, [LogRecord("Nope", 1, {}, 5, 0)])
    assert result.actions == [] and result.rejected == [
        Rejected(5, "Nope", Rejection.UNKNOWN_KIND, "no handler for Nope v1 on the log topic")]


def test_a_record_that_fails_is_undone_alone_and_the_batch_goes_on() -> None:
    p = new_partition()
    good, other = inv_on(0), str(InvocationId(0, 77))
    bad = {"invocation_id": "inv_1garbage", "service": "S", "handler": "h", "input": b""}
    records = [LogRecord("Invoke", 1, codec.decode("Invoke", 1, codec.encode("Invoke", r)), o, 1)
               for o, r in enumerate([{"invocation_id": good, "service": "S", "handler": "h", "input": b""}, bad,
                                      {"invocation_id": other, "service": "S", "handler": "h", "input": b""}], 10)]
    # A record that raises inside its handler, after having written: undone, reported, the rest applies.
    broken = LogRecord("InvokerEffects", 1, {"invocation_id": good, "attempt": 1, "epoch": 1, "timestamp_ms": 1,
                                             "deployment_id": None,
                                             "entries": [encode_frame(MessageType.CALL_COMMAND, b"\xff\xff")],
                                             "handler_kinds": {}, "completion_retention_ms": None,
                                             "outcome": {}}, 13, 1)
    tx = Transaction(p.store)
    result = apply_batch(tx, 0, N, [*records, broken])
    tx.commit(13)
    assert [a.invocation_id for a in result.actions if isinstance(a, RunAttempt)] == [good, other]
    assert [(r.offset, r.reason) for r in result.rejected] == [(11, Rejection.MALFORMED), (13, Rejection.FAILED)]
    assert "malformed invocation id" in result.rejected[0].message
    assert p.status(good)["journal_length"] == 1  # the broken effects left nothing behind
    assert p.status(good)["status"] == "BACKING_OFF"  # but their attempt ended: a protocol violation, retried


def test_one_batch_gives_the_bytes_of_one_record_per_batch_even_when_a_record_fails(monkeypatch) -> None:
    """Within a batch apply() remembers what it read (an invocation's stored status, the epoch): a
    batch holding a record that fails after writing its status must still give the same store as
    the same records applied one batch each."""
    from reprise.partitions.core import lifecycle

    a, b = str(InvocationId(0, 1)), str(InvocationId(0, 2))
    failing_offset = 4
    real_send_reply = lifecycle.send_reply

    def send_reply_failing_once(ctx, reply, inv, value, failure):  # type: ignore[no-untyped-def]
        if ctx.offset == failing_offset:
            raise RuntimeError("injected after the status was written")
        real_send_reply(ctx, reply, inv, value, failure)

    monkeypatch.setattr(lifecycle, "send_reply", send_reply_failing_once)
    reply = {"topic": "replies", "ingress_id": "ing", "request_id": "r"}

    def effects(inv: str, attempt: int, entries: list[bytes], outcome: dict, epoch: int = 1) -> tuple:
        return ("InvokerEffects", {"invocation_id": inv, "attempt": attempt, "epoch": epoch, "timestamp_ms": 2,
                                   "deployment_id": "dp_1", "entries": entries, "outcome": outcome})
    log = [
        ("LeaderEpoch", {"partition": 0, "epoch": 1, "owner": "me", "timestamp_ms": 0}),
        ("Invoke", {"invocation_id": a, "service": "Svc", "handler": "h", "input": b"1", "reply_to": reply}),
        ("Invoke", {"invocation_id": b, "service": "Svc", "handler": "h", "input": b"2", "reply_to": reply}),
        effects(a, 1, [run(1), run_done(1, b'"A"')], suspended(1)),
        effects(b, 1, [output(b'"fails"')], {}),  # offset 4: completes b, then raises: undone
        # offset 5: a notification lands in a's row (its completed ids), then a malformed call raises:
        # the row as it was before this record must be what stays, lists included
        effects(a, 2, [run_done(9, b'"x"'), encode_frame(MessageType.CALL_COMMAND, b"\xff\xff")], suspended(9)),
        effects(b, 1, [output(b'"ok"')], {}),  # b's attempt 1 failed (retried): stale
        ("LeaderEpoch", {"partition": 0, "epoch": 2, "owner": "next", "timestamp_ms": 3}),
        effects(a, 2, [output(b'"late"')], {}),  # from epoch 1: dropped
        effects(a, 2, [output(b'"A!"')], {}, epoch=2),
    ]
    records = [LogRecord(kind, codec.CURRENT[kind], codec.decode(kind, codec.CURRENT[kind], codec.encode(kind, v)),
                         offset, 1_000 + offset) for offset, (kind, v) in enumerate(log)]

    def apply_in(batches: list[list[LogRecord]]) -> tuple[dict[bytes, bytes], list[int]]:
        p = new_partition()
        p.store.data.clear()
        rejected = []
        for batch in batches:
            tx = Transaction(p.store)
            rejected += [r.offset for r in apply_batch(tx, 0, N, batch).rejected]
            tx.commit(batch[-1].offset)
        # each failed record failed its attempt, retried after a backoff (a protocol violation)
        assert {s: n for s, n in p.tables.invocations.counts().items() if n} == {"BACKING_OFF": 2}
        return p.store.data, rejected

    together, rejected_together = apply_in([records])
    apart, rejected_apart = apply_in([[r] for r in records])
    assert rejected_together == rejected_apart == [failing_offset, failing_offset + 1]
    assert together == apart
