"""apply() for streaming attempts: Progress records, notifications offered in journal order, aborts."""

from __future__ import annotations

from reprise.engine.protocol import journal as pj
from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import encode_message
from reprise.engine.protocol.messages import MessageType
from reprise.partitions.core.actions import AbortAttempt, RunAttempt, StreamNotification
from tests.unit.apply_helpers import inv_on, invoke, new_partition, run, run_done, suspended


def progress(*cids: int) -> dict[str, list[int]]:
    return {"proposed": list(cids)}


def test_progress_journals_the_steps_and_streams_their_results_without_a_new_attempt() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)  # journal: [Input]
    actions = p.effects(inv, 1, [run(1), run_done(1, b'"a"')], progress(1))
    assert actions == [StreamNotification(inv, 1, 2, run_done(1, b'"a"'))]
    row = p.status(inv)
    assert (row["status"], row["attempt"], row["journal_length"], row["completed_ids"]) == ("INVOKED", 1, 3, [1])
    # the attempt goes on: a second step, then it ends; its last notification is not streamed
    end = encode_message(pb.OutputCommandMessage(value=pb.Value(content=b'"ab"')))
    assert p.effects(inv, 1, [run(2), run_done(2, b'"b"')], progress(2)) == \
        [StreamNotification(inv, 1, 4, run_done(2, b'"b"'))]
    actions = p.effects(inv, 1, [end], {})
    assert not any(isinstance(a, StreamNotification) for a in actions)
    row = p.status(inv)
    assert (row["status"], row["result_value"], row["journal_length"]) == ("COMPLETED", b'"ab"', 6)


def test_a_final_record_with_results_streams_nothing_and_resumes_as_before() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    assert p.effects(inv, 1, [run(1), run_done(1, b'"a"')], suspended(1)) == [RunAttempt(inv, 2)]


def test_notifications_from_elsewhere_reach_a_running_attempt_in_journal_order() -> None:
    """A signal that arrives while the attempt runs is offered to it, at its journal index."""
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    actions = p.feed("Signal", {"invocation_id": inv, "idx": 17, "value": b'"v"'})
    [note] = actions
    assert isinstance(note, StreamNotification) and (note.attempt, note.index) == (1, 1)
    assert pj.frame_type(note.frame) == MessageType.SIGNAL_NOTIFICATION
    # the same signal for a suspended invocation resumes it instead (nothing to stream to)
    p.effects(inv, 1, [], suspended(5))
    assert p.feed("Signal", {"invocation_id": inv, "idx": 18, "value": b'"w"'}) == []


def test_progress_of_a_superseded_attempt_aborts_it() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    p.effects(inv, 1, [], suspended(1))  # attempt 1 suspended
    assert p.effects(inv, 1, [run(1), run_done(1, b"x")], progress(1)) == [AbortAttempt(inv, 1)]
    assert p.status(inv)["journal_length"] == 1 and "expected INVOKED attempt 1" in p.dropped[-1]


def test_kill_and_pause_abort_a_running_attempt() -> None:
    for command in ("kill", "pause"):
        p = new_partition()
        inv = inv_on(0)
        invoke(p, inv)
        actions = p.feed("AdminCommand", {"invocation_id": inv, "command": command, "reply_to": None})
        assert AbortAttempt(inv, 1) in actions, command
