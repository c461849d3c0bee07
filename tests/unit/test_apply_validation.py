"""Every record kind's checks: a record no engine would write is rejected whole, with its kind of fault.

Each case builds a partition with an invocation in it, feeds one hostile record (valid Avro, hostile
values) and checks the rejection's reason, that nothing was written and no action was asked for.
"""

from __future__ import annotations

from typing import Any

import pytest

from reprise.engine.ids import InvocationId
from reprise.engine.partitioning import partition_for_key
from reprise.engine.protocol.framing import encode_frame
from reprise.engine.protocol.messages import MessageType
from reprise.partitions.core.apply import HANDLERS, VALIDATORS, LogRecord, Rejected, apply_batch
from reprise.partitions.core.apply.validation import MAX_KEY_CHARS, MAX_NAME_CHARS
from reprise.partitions.core.errors import Rejection
from reprise.partitions.core.transaction import APPLIED_OFFSET, Transaction
from reprise.schemas import codec
from tests.unit.apply_helpers import N, Partition, inv_on, invoke, new_partition, output, run, run_done, suspended

HERE, ELSEWHERE = inv_on(0), inv_on(1)
KEY_ELSEWHERE = next(f"k{i}" for i in range(100) if partition_for_key(f"k{i}", N) != 0)
TOO_BIG_PK = "inv_1" + "z" * 11 + "0" * 22  # base62 of more than 64 bits
REPLY = {"topic": "replies", "ingress_id": "ing", "request_id": "r"}


def _invoke(**extra: Any) -> dict[str, Any]:
    return {"invocation_id": inv_on(0) if "invocation_id" not in extra else extra.pop("invocation_id"),
            "service": "Svc", "handler": "h", "input": b"", **extra}


def _effects(inv: str = HERE, **extra: Any) -> dict[str, Any]:
    return {"invocation_id": inv, "attempt": 1, "epoch": 1, "timestamp_ms": 1, "deployment_id": "dp",
            "entries": [], "outcome": {}, **extra}


CASES: list[tuple[str, str, dict[str, Any], Rejection]] = [
    ("invoke id on another partition", "Invoke", _invoke(invocation_id=ELSEWHERE), Rejection.WRONG_PARTITION),
    ("invoke id malformed", "Invoke", _invoke(invocation_id="inv_1garbage"), Rejection.MALFORMED),
    ("invoke id past 64 bits", "Invoke", _invoke(invocation_id=TOO_BIG_PK), Rejection.MALFORMED),
    ("invoke key routed elsewhere", "Invoke", _invoke(invocation_id=None, key=KEY_ELSEWHERE,
                                                     handler_kind="EXCLUSIVE"), Rejection.WRONG_PARTITION),
    ("invoke huge key", "Invoke", _invoke(key="k" * (MAX_KEY_CHARS + 1)), Rejection.TOO_LARGE),
    ("invoke huge service", "Invoke", _invoke(service="S" * (MAX_NAME_CHARS + 1)), Rejection.TOO_LARGE),
    ("invoke no handler", "Invoke", _invoke(handler=""), Rejection.MALFORMED),
    ("invoke unknown handler kind", "Invoke", _invoke(handler_kind="ROOT"), Rejection.UNKNOWN_VALUE),
    ("invoke bogus sender", "Invoke", _invoke(sender_id="sub_nope"), Rejection.MALFORMED),
    ("invoke bogus caller", "Invoke", _invoke(caller={"invocation_id": "nope", "completion_id": 1}),
     Rejection.MALFORMED),
    ("invoke negative caller completion", "Invoke",
     _invoke(caller={"invocation_id": ELSEWHERE, "completion_id": -1}), Rejection.OUT_OF_RANGE),
    ("invoke at the end of time", "Invoke", _invoke(execute_at_ms=2**62), Rejection.OUT_OF_RANGE),
    ("invoke source of no partition", "Invoke", _invoke(source={"partition": 99, "seq": 1}),
     Rejection.OUT_OF_RANGE),
    ("invoke negative source seq", "Invoke", _invoke(source={"partition": 1, "seq": -1}), Rejection.OUT_OF_RANGE),
    ("effects on another partition", "InvokerEffects", _effects(ELSEWHERE), Rejection.WRONG_PARTITION),
    ("effects negative attempt", "InvokerEffects", _effects(attempt=-1), Rejection.OUT_OF_RANGE),
    ("effects truncated frame", "InvokerEffects", _effects(entries=[run(1)[:-1]]), Rejection.MALFORMED),
    ("effects control message journaled", "InvokerEffects", _effects(entries=[encode_frame(MessageType.END, b"")]),
     Rejection.MALFORMED),
    ("effects kind for no entry", "InvokerEffects", _effects(entries=[run(1)], handler_kinds={"5": "EXCLUSIVE"}),
     Rejection.OUT_OF_RANGE),
    ("effects unknown kind", "InvokerEffects", _effects(entries=[run(1)], handler_kinds={"0": "ROOT"}),
     Rejection.UNKNOWN_VALUE),
    ("effects negative awaited id", "InvokerEffects", _effects(outcome=suspended(-1)), Rejection.OUT_OF_RANGE),
    ("effects negative retry delay", "InvokerEffects",
     _effects(outcome={"code": 500, "message": "x", "retryable": True, "next_retry_delay_ms": -5}),
     Rejection.OUT_OF_RANGE),
    ("timer key of another table", "TimerFired", {"timer_key": f"in/{HERE}", "epoch": 1, "timestamp_ms": 1},
     Rejection.MALFORMED),
    ("timer key with unicode digits", "TimerFired",
     {"timer_key": "tm/²²²²²²²²²²²²²²²/x", "epoch": 1, "timestamp_ms": 1}, Rejection.MALFORMED),
    ("call completed negative id", "CallCompleted", {"invocation_id": HERE, "completion_id": -1},
     Rejection.OUT_OF_RANGE),
    ("call completed twice", "CallCompleted", {"invocation_id": HERE, "completion_id": 1, "value": b"2"},
     Rejection.INCONSISTENT),
    ("call completed value and failure", "CallCompleted",
     {"invocation_id": HERE, "completion_id": 2, "value": b"1", "failure": {"code": 500, "message": "x"}},
     Rejection.MALFORMED),
    ("call completed on another partition", "CallCompleted", {"invocation_id": ELSEWHERE, "completion_id": 2},
     Rejection.WRONG_PARTITION),
    ("epoch for another partition", "LeaderEpoch", {"partition": 3, "epoch": 2, "owner": "x", "timestamp_ms": 1},
     Rejection.WRONG_PARTITION),
    ("epoch at max long", "LeaderEpoch", {"partition": 0, "epoch": 2**63 - 1, "owner": "x", "timestamp_ms": 1},
     Rejection.OUT_OF_RANGE),
    ("epoch of nobody", "LeaderEpoch", {"partition": 0, "epoch": 2, "owner": "", "timestamp_ms": 1},
     Rejection.MALFORMED),
    ("outbox shipped far past its end", "OutboxShipped", {"epoch": 1, "up_to_seq": 2**62}, Rejection.OUT_OF_RANGE),
    ("signal with no id", "Signal", {"invocation_id": HERE, "value": b"1"}, Rejection.MALFORMED),
    ("signal negative idx", "Signal", {"invocation_id": HERE, "idx": -1}, Rejection.OUT_OF_RANGE),
    ("signal on another partition", "Signal", {"invocation_id": ELSEWHERE, "idx": 17}, Rejection.WRONG_PARTITION),
    ("admin command malformed id", "AdminCommand", {"invocation_id": "inv_1" + "!" * 33, "command": "kill"},
     Rejection.MALFORMED),
    ("attach unknown mode", "Attach", {"invocation_id": HERE, "mode": "steal", "reply_to": REPLY},
     Rejection.UNKNOWN_VALUE),
    ("retention sweep without limit", "RetentionSweep", {"epoch": 1, "before_ms": 5, "limit": 2**31 - 1},
     Rejection.OUT_OF_RANGE),
    ("retention sweep of nothing", "RetentionSweep", {"epoch": 1, "before_ms": 5, "limit": 0}, Rejection.OUT_OF_RANGE),
]


def partition_with_a_running_invocation() -> Partition:
    """Invocation HERE in attempt 2, its completion 1 (a run) in the journal, one outbox entry."""
    p = new_partition()
    invoke(p, HERE)
    p.effects(HERE, 1, [run(1), run_done(1, b'"A"')], suspended(1))
    return p


def feed(p: Partition, kind: str, value: dict[str, Any]) -> tuple[list[Any], list[Rejected]]:
    p.offset += 1
    version = codec.CURRENT[kind]
    rec = LogRecord(kind, version, codec.decode(kind, version, codec.encode(kind, value)), p.offset, 5_000)
    tx = Transaction(p.store)
    result = apply_batch(tx, 0, N, [rec])
    tx.commit(p.offset)
    return result.actions, result.rejected


def state(p: Partition) -> dict[bytes, bytes]:
    return {k: v for k, v in p.store.data.items() if k != APPLIED_OFFSET}


@pytest.mark.parametrize(("kind", "value", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_hostile_record_is_rejected_whole(kind: str, value: dict[str, Any], reason: Rejection) -> None:
    p = partition_with_a_running_invocation()
    before = state(p)
    actions, rejected = feed(p, kind, value)
    assert [(r.kind, r.reason) for r in rejected] == [(kind, reason)], rejected
    assert actions == [] and state(p) == before


def test_the_same_hostile_records_are_rejected_the_same_on_replay() -> None:
    def run_all() -> tuple[dict[bytes, bytes], list[Rejected]]:
        p = partition_with_a_running_invocation()
        out: list[Rejected] = []
        for _, kind, value, _ in CASES:
            out += feed(p, kind, value)[1]
        return p.store.data, out
    first, second = run_all(), run_all()
    assert first == second and len(first[1]) == len(CASES)


def test_every_kind_apply_handles_has_its_checks() -> None:
    assert {kind for kind, _ in HANDLERS} == set(VALIDATORS)


def test_valid_records_of_the_same_kinds_still_apply() -> None:
    """The checks' bounds: a record at each edge the engine writes passes."""
    p = partition_with_a_running_invocation()
    key = next(f"k{i}" for i in range(100) if partition_for_key(f"k{i}", N) == 0)
    assert feed(p, "Invoke", _invoke(invocation_id=None, key=key, handler_kind="EXCLUSIVE",
                                     caller={"invocation_id": ELSEWHERE, "completion_id": 0}))[1] == []
    assert feed(p, "Invoke", _invoke(invocation_id=str(InvocationId(4, 2**128 - 1)),
                                     execute_at_ms=10**15 - 1))[1] == []
    assert feed(p, "CallCompleted", {"invocation_id": HERE, "completion_id": 2, "value": b"1"})[1] == []
    assert feed(p, "Signal", {"invocation_id": HERE, "name": "go"})[1] == []
    assert feed(p, "LeaderEpoch", {"partition": 0, "epoch": 1_001, "owner": "far", "timestamp_ms": 1})[1] == []
    assert feed(p, "OutboxShipped", {"epoch": 1_001, "up_to_seq": p.tables.outbox.next() - 1})[1] == []
    assert feed(p, "InvokerEffects", _effects(attempt=2, epoch=1_001, entries=[output(b"1")],
                                              handler_kinds={"0": "SHARED"}))[1] == []
    assert p.status(HERE)["status"] == "COMPLETED"
