"""The one-pass checks (partitions/core/apply/validation_fast.py) never pass what the full checks refuse.

A fast validator that returns hands the record to apply(); one that doubts hands it to the full checks
(validation.py), which decide. So the whole is exactly as strict as the full checks as long as the fast
path passes nothing they would refuse: checked here on crafted hostile records of every kind and on
records at each bound, with the memos of partition keys cold and warm.
"""

from __future__ import annotations

from typing import Any

import pytest

from reprise.engine.ids import InvocationId
from reprise.partitions.core.apply import VALIDATORS, validation, validation_fast
from reprise.partitions.core.context import ApplyContext
from reprise.partitions.core.errors import RejectedRecord
from reprise.partitions.core.memory_store import MemoryStore
from reprise.partitions.core.tables import Tables
from reprise.partitions.core.transaction import Transaction
from reprise.schemas import codec
from tests.crafted import Crafter
from tests.unit.apply_helpers import N, inv_on, run

HERE = inv_on(0)
FAST_KINDS = ("Invoke", "InvokerEffects", "CallCompleted", "OutboxShipped")


def _ctx() -> ApplyContext:
    tx = Transaction(MemoryStore())
    tx.put(b"meta/outbox_next", b"3")
    return ApplyContext(Tables(tx), 0, N, -1)


def _verdict(check: Any, ctx: ApplyContext, rec: dict[str, Any]) -> str | None:
    try:
        check(ctx, rec)
    except RejectedRecord as e:
        return e.reason.value
    return None


def _fast_passes(kind: str, ctx: ApplyContext, rec: dict[str, Any]) -> bool:
    """Whether the fast validator returned without asking the full checks."""
    asked: list[bool] = []
    real = validation.VALIDATORS[kind]
    fallback = validation_fast.full
    try:
        validation_fast.full = _Spy(asked)  # type: ignore[assignment]
        validation_fast.VALIDATORS[kind](ctx, rec)
    finally:
        validation_fast.full = fallback
    assert real is validation.VALIDATORS[kind]
    return not asked


class _Spy:
    """Stands in for the validation module: notes that the fast path handed a record over."""

    def __init__(self, asked: list[bool]) -> None:
        self._asked = asked

    def __getattr__(self, name: str) -> Any:
        def check(ctx: ApplyContext, rec: dict[str, Any]) -> None:
            self._asked.append(True)
        return check


def _edge_records() -> list[tuple[str, dict[str, Any]]]:
    """Records at and just past each bound the fast path decides itself."""
    top_pk = str(InvocationId(2**64 - N, 1))  # the largest partition key routed to partition 0
    past_pk = "inv_1" + validation_fast._PK_END + "0" * 22
    top_uuid = str(InvocationId(0, 2**128 - 1))
    past_uuid = "inv_1" + "0" * 11 + validation_fast._UUID_END
    invoke = {"invocation_id": HERE, "service": "S", "handler": "h", "handler_kind": None, "key": None,
              "idempotency_key": None, "caller": None, "execute_at_ms": None, "source": None}
    effects = {"invocation_id": HERE, "attempt": 1, "epoch": 0, "deployment_id": None, "entries": [run(1)],
               "handler_kinds": {}, "completion_retention_ms": None, "outcome": {}}
    out: list[tuple[str, dict[str, Any]]] = []
    for inv in (top_pk, past_pk, top_uuid, past_uuid, HERE[:-1] + "!", HERE + "0", "inv_2" + HERE[5:],
                "inv_1" + "²" + HERE[6:], ""):
        out.append(("Invoke", {**invoke, "invocation_id": inv}))
        out.append(("Invoke", {**invoke, "caller": {"invocation_id": inv, "completion_id": 2**32 - 1}}))
        out.append(("InvokerEffects", {**effects, "invocation_id": inv}))
    for field, values in (("service", ["", "s" * 1024, "s" * 1025]), ("handler_kind", ["SHARED", "ROOT"]),
                          ("execute_at_ms", [0, 10**15 - 1, 10**15, -1]),
                          ("idempotency_key", ["", "i" * 65_536, "i" * 65_537]),
                          ("source", [{"partition": N - 1, "seq": 2**63 - 1}, {"partition": N, "seq": 0},
                                      {"partition": 0, "seq": -1}])):
        out += [("Invoke", {**invoke, field: v}) for v in values]
    for field, values in (("attempt", [0, 1, 2**31 - 1, 2**31]), ("epoch", [-1, 2**63 - 1, 2**63]),
                          ("deployment_id", ["", "d" * 1024, "d" * 1025]),
                          ("completion_retention_ms", [0, 10**15 - 1, 10**15]),
                          ("entries", [[b""], [run(1)[:-1]], [run(1) + b"x"], [b"\x00\x03\x00\x00\x00\x00\x00\x00"],
                                       [b"\x04\x00\x00\x00\x00\x00\x00\x00"]]),
                          ("handler_kinds", [{"0": "SHARED"}, {"1": "SHARED"}, {"0": "ROOT"}, {"٠": "SHARED"}]),
                          ("outcome", [{"completions": [0, 2**32 - 1], "signals": [], "named_signals": []},
                                       {"completions": [2**32], "signals": [], "named_signals": []},
                                       {"completions": [], "signals": [-1], "named_signals": []},
                                       {"completions": list(range(65_537)), "signals": [], "named_signals": []},
                                       {"code": 2**31, "message": "", "retryable": True, "next_retry_delay_ms": None},
                                       {"code": 500, "message": "", "retryable": True, "next_retry_delay_ms": -1},
                                       {"proposed": [1, -1]}, {"proposed": []}])):
        out += [("InvokerEffects", {**effects, field: v}) for v in values]
    completed = {"invocation_id": HERE, "completion_id": 1, "value": None, "failure": None, "source": None}
    out += [("CallCompleted", {**completed, **extra}) for extra in (
        {"completion_id": 2**32}, {"value": b"1", "failure": {"code": 1, "message": ""}},
        {"failure": {"code": 2**31, "message": ""}}, {"failure": {"code": 0, "message": ""}},
        {"source": {"partition": -1, "seq": 0}}, {"invocation_id": inv_on(1)})]
    out += [("OutboxShipped", {"epoch": e, "up_to_seq": s}) for e, s in ((0, -1), (0, 2), (0, 3), (-1, 0), (0, -2))]
    return out


def _crafted_records() -> list[tuple[str, dict[str, Any]]]:
    crafter = Crafter(7, 0, N, big=70_000, known_ids=[HERE])
    return [(kind, codec.decode(kind, codec.CURRENT[kind], crafter.encoded(kind)))
            for _ in range(150) for kind in FAST_KINDS]


@pytest.mark.parametrize("memo", ["cold", "warm"])
def test_what_the_fast_path_passes_the_full_checks_pass(memo: str) -> None:
    records = _edge_records() + _crafted_records()
    ctx = _ctx()
    passed = {kind: 0 for kind in FAST_KINDS}
    for kind, rec in records:
        if memo == "cold":
            validation_fast._ID_PARTITION_KEYS.clear()
            validation_fast._PARTITION_KEYS.clear()
        if _fast_passes(kind, ctx, rec):
            passed[kind] += 1
            assert _verdict(validation.VALIDATORS[kind], ctx, rec) is None, (kind, rec)
        # and the whole (fast, then full when in doubt) decides as the full checks do
        assert _verdict(VALIDATORS[kind], ctx, rec) == _verdict(validation.VALIDATORS[kind], ctx, rec), (kind, rec)
    assert all(passed.values()), passed  # the fast path does decide some of each kind itself


def test_the_fast_path_decides_the_records_an_engine_writes() -> None:
    """Not a correctness property but the point of the module: the common records skip the full checks."""
    ctx = _ctx()
    suspended = {"completions": [1], "signals": [], "named_signals": []}
    for kind, rec in (
            ("Invoke", {"invocation_id": HERE, "service": "S", "handler": "h", "handler_kind": "EXCLUSIVE",
                        "key": next(f"k{i}" for i in range(100) if _verdict(validation.invoke, ctx, {
                            "invocation_id": None, "service": "S", "handler": "h", "handler_kind": None,
                            "key": f"k{i}", "idempotency_key": None, "caller": None, "execute_at_ms": None,
                            "source": None}) is None),
                        "idempotency_key": None, "caller": None, "execute_at_ms": None, "source": None}),
            ("InvokerEffects", {"invocation_id": HERE, "attempt": 1, "epoch": 1, "deployment_id": "dp",
                                "entries": [run(1)], "handler_kinds": {}, "completion_retention_ms": None,
                                "outcome": suspended}),
            ("OutboxShipped", {"epoch": 1, "up_to_seq": 2})):
        assert _fast_passes(kind, ctx, rec), kind
