"""Purge-journal and restart-as-new, as Restate answers them, in the pure core."""

from __future__ import annotations

from typing import Any

import orjson

from reprise.engine.ids import InvocationId
from reprise.engine.protocol import journal as pj
from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import encode_message
from reprise.partitions.core.actions import RunAttempt
from tests.unit.apply_helpers import (
    N,
    Partition,
    inv_on,
    invoke,
    new_partition,
    outbox_records,
    output,
    run,
    run_done,
)

SLEEP = encode_message(pb.SleepCommandMessage(wake_up_time=9_000, result_completion_id=2))
# input 0, run 1, its completion 2, sleep 3, its completion 4, output 5 (as a Restate journal)
ENTRIES = [run(1), run_done(1, b'"x"'), SLEEP, pj.sleep_completion(2), output(b'"done"')]


def command(p: Partition, inv: str, name: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    """The answer the operator gets: (code, body or failure)."""
    before = len(outbox_records(p))
    p.feed("AdminCommand", {"invocation_id": inv, "command": name,
                            "reply_to": {"topic": "replies", "ingress_id": "admin", "request_id": name}, **extra})
    [(_, reply)] = outbox_records(p)[before:]
    if reply["failure"] is not None:
        return reply["failure"]["code"], reply["failure"]
    body = orjson.loads(reply["value"])
    return body["code"], body


def other_on_0(*taken: str) -> str:
    """An invocation id of partition 0 other than ``taken``."""
    return next(str(i) for j in range(1000) if (i := InvocationId.derived(f"o{j}", "t", j)).partition(N) == 0
                and str(i) not in taken)


def completed(p: Partition, entries: list[bytes] = ENTRIES) -> str:
    inv = inv_on(0)
    invoke(p, inv, headers=[{"name": "x-h", "value": "v"}])
    p.effects(inv, 1, entries, {})
    return inv


def test_purge_journal_keeps_the_status_and_answers_as_restate() -> None:
    p = new_partition()
    inv = completed(p)
    assert command(p, inv, "purge-journal")[0] == 200
    row = p.status(inv)
    assert (row["status"], row["result_value"], row["journal_length"]) == ("COMPLETED", b'"done"', 0)
    assert p.tables.journals.entry(inv, 0) is None
    assert command(p, inv, "purge-journal")[0] == 200  # again: nothing left, still 200
    q = new_partition()
    running = inv_on(0)
    invoke(q, running)
    code, failure = command(q, running, "purge-journal")
    assert (code, failure["message"]) == (409, f"The invocation '{running}' is not yet completed.")
    assert q.status(running)["journal_length"] == 1
    assert command(p, str(other_on_0(inv)), "purge-journal")[0] == 404


def test_restart_as_new_from_zero_starts_a_new_invocation_with_the_input_on_the_same_partition() -> None:
    p = new_partition()
    inv = completed(p)
    before = len(p.store.data)
    code, body = command(p, inv, "restart-as-new")
    new = body["new_invocation_id"]
    assert code == 200 and new != inv and InvocationId.parse(new).pk == InvocationId.parse(inv).pk
    row = p.status(new)
    assert (row["status"], row["restarted_from"], row["journal_length"], row["deployment_id"]) == \
        ("INVOKED", inv, 1, None)
    assert p.tables.journals.entry(new, 0) == p.tables.journals.entry(inv, 0)  # the input, headers and all
    assert p.status(inv)["status"] == "COMPLETED" and len(p.store.data) > before
    assert command(p, inv, "restart-as-new")[1]["new_invocation_id"] not in (new, inv)  # a new id each time


def test_restart_as_new_from_a_prefix_copies_it_with_its_commands_completions() -> None:
    p = new_partition()
    inv = completed(p)
    code, body = command(p, inv, "restart-as-new", restart_from=1, restart_deployment="keep")
    new = body["new_invocation_id"]
    assert code == 200
    journal = p.tables.journals.read(new, p.status(new)["journal_length"])
    original = p.tables.journals.read(inv, 6)
    assert journal == original[:3]  # input, run, and the run's completion (after the prefix)
    assert p.status(new)["completed_ids"] == [1] and p.status(new)["deployment_id"] == "dp_1"
    assert command(p, inv, "restart-as-new", restart_from=3)[0] == 200  # the sleep and its completion
    code, failure = command(p, inv, "restart-as-new", restart_from=9)
    assert code == 400 and "without respective Completions" in failure["message"]


def test_a_command_in_the_prefix_without_its_completion_refuses_the_restart() -> None:
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    p.effects(inv, 1, [SLEEP], {"completions": [2], "signals": [], "named_signals": []})
    p.feed("AdminCommand", {"invocation_id": inv, "command": "kill", "reply_to": None})
    assert command(p, inv, "restart-as-new", restart_from=1)[0] == 400
    assert command(p, inv, "restart-as-new")[0] == 200  # from 0 needs only the input


def test_restart_as_new_refusals_are_restates() -> None:
    p = new_partition()
    inv = completed(p)
    assert command(p, inv, "purge-journal")[0] == 200
    code, failure = command(p, inv, "restart-as-new")
    assert code == 410 and "input is not available" in failure["message"]
    running = other_on_0(inv)
    actions = invoke(p, running)
    assert any(isinstance(a, RunAttempt) for a in actions)
    assert command(p, running, "restart-as-new") == (409, {"code": 409, "message":
                                                           f"The invocation '{running}' is still running."})
    scheduled = other_on_0(inv, running)
    invoke(p, scheduled, execute_at_ms=10**9)
    assert command(p, scheduled, "restart-as-new")[0] == 425
    assert command(p, other_on_0(inv, running, scheduled), "restart-as-new")[0] == 404


def test_restart_as_new_of_a_workflow_run_is_refused() -> None:
    p = new_partition()
    key = next(k for k in (f"w{i}" for i in range(1000))
               if InvocationId.derived(k, "t").partition(N) == 0)
    flow = str(InvocationId.derived(key, "wf", key))
    invoke(p, flow, key=key, handler_kind="WORKFLOW")
    p.effects(flow, 1, [output(b"1")], {})
    assert command(p, flow, "restart-as-new")[0] == 422
