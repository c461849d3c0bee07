"""Helpers for the apply() unit tests: a partition over the in-memory store, record builders."""

from __future__ import annotations

from typing import Any

from reprise.engine.ids import InvocationId
from reprise.engine.protocol import journal as pj
from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import encode_message
from reprise.partitions.core.apply import LogRecord, apply_batch
from reprise.partitions.core.memory_store import MemoryStore
from reprise.partitions.core.tables import Tables
from reprise.partitions.core.transaction import Transaction
from reprise.schemas import codec

N = 4


class Partition:
    """One partition's store with a log cursor; records are round-tripped through the Avro codec."""

    def __init__(self, partition: int = 0) -> None:
        self.store = MemoryStore()
        self.partition = partition
        self.offset = -1
        self.dropped: list[str] = []

    def feed(self, kind: str, value: dict[str, Any], ts: int = 1_000) -> list[Any]:
        self.offset += 1
        version = codec.CURRENT[kind]
        decoded = codec.decode(kind, version, codec.encode(kind, value))
        tx = Transaction(self.store)
        result = apply_batch(tx, self.partition, N, [LogRecord(kind, version, decoded, self.offset, ts)])
        tx.commit(self.offset)
        self.dropped += result.dropped
        self.check_remembered_rows()
        return result.actions

    def check_remembered_rows(self) -> None:
        """The rows the store remembers decoded are exactly what decoding their bytes gives: the next
        batch starts from them, so any difference would make state depend on where batches end."""
        for key, row in self.store.objects.items():
            assert key.startswith(b"in/"), key
            assert codec.decode_stored("InvocationStatus", self.store.data[key]) == row, key

    @property
    def tables(self) -> Tables:
        return Tables(Transaction(self.store))

    def status(self, inv: str) -> dict[str, Any]:
        row = self.tables.invocations.get(inv)
        assert row is not None
        return row

    def effects(self, inv: str, attempt: int, entries: list[bytes], outcome: dict[str, Any],
                epoch: int = 1, ts: int = 2_000) -> list[Any]:
        return self.feed("InvokerEffects", {"invocation_id": inv, "attempt": attempt, "epoch": epoch,
                                            "timestamp_ms": ts, "deployment_id": "dp_1", "entries": entries,
                                            "outcome": outcome}, ts)


def new_partition() -> Partition:
    p = Partition(0)
    p.feed("LeaderEpoch", {"partition": 0, "epoch": 1, "owner": "me", "timestamp_ms": 0})
    return p


def inv_on(partition: int) -> str:
    for i in range(1000):
        iid = InvocationId.derived(f"k{i}", "test", i)
        if iid.partition(N) == partition:
            return str(iid)
    raise AssertionError


def invoke(p: Partition, inv: str, **extra: Any) -> list[Any]:
    rec = {"invocation_id": inv, "service": "Svc", "handler": "h", "input": b'"x"', "created_ms": 1,
           "reply_to": {"topic": "replies", "ingress_id": "ing", "request_id": inv}, **extra}
    return p.feed("Invoke", rec)


def run(cid: int) -> bytes:
    return encode_message(pb.RunCommandMessage(result_completion_id=cid, name="step"))


def run_done(cid: int, value: bytes) -> bytes:
    return pj.run_completion_from_proposal(
        pb.ProposeRunCompletionMessage(result_completion_id=cid, value=value).SerializeToString())


def output(value: bytes) -> bytes:
    return encode_message(pb.OutputCommandMessage(value=pb.Value(content=value)))


def suspended(*cids: int) -> dict[str, Any]:
    return {"completions": list(cids), "signals": [1], "named_signals": []}


def outbox_records(p: Partition) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for seq in p.tables.outbox.pending():
        e = p.tables.outbox.entry(seq)
        out.append((e["kind"], codec.decode(e["kind"], codec.CURRENT[e["kind"]], e["value"])))  # as shipped
    return out
