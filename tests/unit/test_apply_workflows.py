"""apply() for workflows, promises, signals and operator commands."""

from __future__ import annotations

from reprise.engine.ids import InvocationId, awakeable_id, parse_awakeable_id
from reprise.engine.protocol import journal as pj
from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import encode_message
from reprise.partitions.core.actions import RunAttempt
from tests.unit.apply_helpers import invoke, new_partition, output, suspended


def test_workflow_output_is_purged_after_its_retention() -> None:
    p = new_partition()
    run = str(InvocationId(0, 1))
    invoke(p, run, key="wf", handler_kind="WORKFLOW")
    p.effects(run, 1, [encode_message(pb.SetStateCommandMessage(key=b"s", value=pb.Value(content=b"1"))),
                       output(b"true")], {}, ts=10_000)
    [(key, timer)] = list(p.tables.timers.all())
    assert timer["kind"] == "cleanup" and timer["fire_at_ms"] == 10_000 + 24 * 3600 * 1000
    p.feed("TimerFired", {"timer_key": key, "epoch": 1, "timestamp_ms": timer["fire_at_ms"]})
    assert p.tables.invocations.get(run) is None and p.tables.state.all("Svc", "wf") == []
    assert p.tables.journals.entry(run, 0) is None


def test_promise_first_completion_wins_and_wakes_the_waiter() -> None:
    p = new_partition()
    run, click, late = (str(InvocationId(0, i)) for i in (1, 2, 3))
    invoke(p, run, key="wf", handler_kind="WORKFLOW")
    get = encode_message(pb.GetPromiseCommandMessage(key="link", result_completion_id=1))
    p.effects(run, 1, [get], suspended(1))
    assert p.status(run)["status"] == "SUSPENDED"
    invoke(p, click, key="wf", handler_kind="SHARED")
    done = encode_message(pb.CompletePromiseCommandMessage(key="link", completion_value=pb.Value(content=b'"s"'),
                                                           result_completion_id=1))
    actions = p.effects(click, 1, [done], suspended(1))
    assert RunAttempt(run, 2) in actions and RunAttempt(click, 2) in actions
    assert pj.decode(p.tables.journals.entry(run, 2)).value.content == b'"s"'
    invoke(p, late, key="wf", handler_kind="SHARED")
    again = encode_message(pb.CompletePromiseCommandMessage(key="link", completion_value=pb.Value(content=b'"x"'),
                                                            result_completion_id=1))
    p.effects(late, 1, [again], suspended(1))
    assert pj.decode(p.tables.journals.entry(late, 2)).failure.code == 409


def test_awakeable_ids_round_trip_and_signals_resume() -> None:
    p = new_partition()
    inv = str(InvocationId(0, 5))
    assert parse_awakeable_id(awakeable_id(InvocationId.parse(inv), 17)) == (InvocationId.parse(inv), 17)
    invoke(p, inv)
    p.effects(inv, 1, [], {"completions": [], "signals": [1, 17], "named_signals": ["go"]})
    assert p.feed("Signal", {"invocation_id": inv, "name": "other", "value": b"1"}) == []
    assert p.feed("Signal", {"invocation_id": inv, "idx": 17, "value": b'"v"'}) == [RunAttempt(inv, 2)]
    assert pj.notification_id(p.tables.journals.entry(inv, 2)) == ("signal", 17)


def test_admin_commands_answer_through_replies() -> None:
    p = new_partition()
    inv = str(InvocationId(0, 9))
    invoke(p, inv)
    reply_to = {"topic": "replies", "ingress_id": "admin", "request_id": "r1"}
    p.feed("AdminCommand", {"invocation_id": inv, "command": "pause", "reply_to": reply_to})
    assert p.status(inv)["status"] == "PAUSED"
    assert p.feed("AdminCommand", {"invocation_id": inv, "command": "resume", "reply_to": reply_to})[0] == \
        RunAttempt(inv, 2)
    p.feed("AdminCommand", {"invocation_id": inv, "command": "kill", "reply_to": reply_to})
    assert p.status(inv)["result_failure"] == {"code": 409, "message": "killed"}
    p.feed("AdminCommand", {"invocation_id": inv, "command": "purge", "reply_to": reply_to})
    assert p.tables.invocations.get(inv) is None
