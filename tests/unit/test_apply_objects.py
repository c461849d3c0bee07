"""apply() for Virtual Objects: the per-key lock and inbox, shared handlers, lazy state."""

from __future__ import annotations

from reprise.engine.ids import InvocationId
from reprise.engine.protocol import journal as pj
from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import encode_message
from reprise.partitions.core.actions import RunAttempt
from tests.unit.apply_helpers import invoke, new_partition, output, suspended


def test_exclusive_calls_queue_per_key_and_shared_ones_do_not() -> None:
    p = new_partition()
    first, second, other_key, shared = (str(InvocationId(0, i + 1)) for i in range(4))
    assert invoke(p, first, key="k", handler_kind="EXCLUSIVE") == [RunAttempt(first, 1)]
    assert invoke(p, second, key="k", handler_kind="EXCLUSIVE") == []
    assert p.status(second)["status"] == "INBOXED" and p.tables.objects.waiting("Svc", "k") == [second]
    assert invoke(p, other_key, key="y", handler_kind="EXCLUSIVE") == [RunAttempt(other_key, 1)]
    assert invoke(p, shared, key="k", handler_kind="SHARED") == [RunAttempt(shared, 1)]
    sleep = encode_message(pb.SleepCommandMessage(wake_up_time=9_000, result_completion_id=1))
    p.effects(first, 1, [sleep], suspended(1))  # a suspended exclusive invocation keeps the key
    assert p.status(first)["status"] == "SUSPENDED" and p.tables.objects.lock_holder("Svc", "k") == first
    assert p.status(second)["status"] == "INBOXED"
    key = next(iter(p.tables.timers.all()))[0]
    p.feed("TimerFired", {"timer_key": key, "epoch": 1, "timestamp_ms": 9_000})
    actions = p.effects(first, 2, [output(b"1")], {})
    assert RunAttempt(second, 1) in actions and p.tables.objects.lock_holder("Svc", "k") == second


def test_status_counts_and_inbox_depth_follow_every_change() -> None:
    """The metrics' counters are kept by apply(), so they must match a full count at every step."""
    p = new_partition()
    ids = [str(InvocationId(0, i + 1)) for i in range(3)]

    def truth() -> tuple[dict[str, int], int]:
        counts: dict[str, int] = {}
        for inv in ids:
            row = p.tables.invocations.get(inv)
            if row is not None:
                counts[row["status"]] = counts.get(row["status"], 0) + 1
        return counts, len(p.tables.objects.waiting("Svc", "k"))

    def kept() -> tuple[dict[str, int], int]:
        return {s: n for s, n in p.tables.invocations.counts().items() if n}, p.tables.objects.depth()

    for inv in ids:
        invoke(p, inv, key="k", handler_kind="EXCLUSIVE")
        assert kept() == truth()
    assert kept() == ({"INVOKED": 1, "INBOXED": 2}, 2)
    for inv in ids:
        p.effects(inv, 1, [output(b"1")], {})
        assert kept() == truth()
    assert kept() == ({"COMPLETED": 3}, 0)


def test_lock_passes_in_arrival_order() -> None:
    p = new_partition()
    ids = [str(InvocationId(0, i + 1)) for i in range(3)]
    for inv in ids:
        invoke(p, inv, key="k", handler_kind="EXCLUSIVE")
    assert p.tables.objects.waiting("Svc", "k") == ids[1:]
    for i, inv in enumerate(ids):
        actions = p.effects(inv, 1, [output(b"1")], {})
        nxt = [a for a in actions if isinstance(a, RunAttempt)]
        assert nxt == ([RunAttempt(ids[i + 1], 1)] if i + 1 < len(ids) else [])
    assert p.tables.objects.lock_holder("Svc", "k") is None and p.tables.objects.waiting("Svc", "k") == []


def test_lazy_state_round_trip_in_apply() -> None:
    p = new_partition()
    inv = str(InvocationId(0, 99))
    invoke(p, inv, key="k", handler_kind="EXCLUSIVE")
    set_a = encode_message(pb.SetStateCommandMessage(key=b"a", value=pb.Value(content=b'"1"')))
    get_a = encode_message(pb.GetLazyStateCommandMessage(key=b"a", result_completion_id=1))
    get_b = encode_message(pb.GetLazyStateCommandMessage(key=b"b", result_completion_id=2))
    keys = encode_message(pb.GetLazyStateKeysCommandMessage(result_completion_id=3))
    assert p.effects(inv, 1, [set_a, get_a, get_b, keys], suspended(3)) == [RunAttempt(inv, 2)]
    entries = [pj.decode(p.tables.journals.entry(inv, i)) for i in range(p.status(inv)["journal_length"])]
    notes = {e.completion_id: e for e in entries if hasattr(e, "completion_id") and e.completion_id}
    assert notes[1].value.content == b'"1"'
    assert notes[2].HasField("void")
    assert list(notes[3].state_keys.keys) == [b"a"]
