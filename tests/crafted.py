"""Crafted log records: valid Avro of every internal kind, with hostile values.

A seeded generator walks each kind's schema and fills every field from a pool of values chosen to
hit the checks: ids of this partition, of another, malformed or past 64 bits; keys routed elsewhere;
huge strings; negative, zero and maximal numbers; journal frames whole, truncated or of control
types; timer keys of other tables. Some records are valid and must apply. Used by the unit fuzz
(in-memory store) and the integration fuzz (a running engine's log topic).
"""

from __future__ import annotations

import random
from typing import Any

from reprise.engine.ids import InvocationId
from reprise.engine.partitioning import partition_for_key
from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import encode_frame, encode_message
from reprise.engine.protocol.messages import MessageType
from reprise.schemas import codec

# Every kind apply() handles, and the kinds on the log that it does not (rejected as unknown).
KINDS = ("Invoke", "InvokerEffects", "TimerFired", "CallCompleted", "LeaderEpoch", "OutboxShipped", "Signal",
         "AdminCommand", "Attach", "RetentionSweep", "ScheduleCommand", "StateMutation", "Reply", "Deployment",
         "Subscription")
INT_EDGES = (0, 1, 2, 17, -1, 2**31 - 1, -(2**31))
LONG_EDGES = (0, 1, 2, -1, 2**31, 2**63 - 1, -(2**63), 10**15, 1_700_000_000_000)


class Crafter:
    """Hostile records for one partition of ``partitions``; ``big`` is the size of a huge value."""

    def __init__(self, seed: int, partition: int, partitions: int, big: int = 200_000,
                 epoch: int = 1, known_ids: list[str] | None = None) -> None:
        self.rng = random.Random(seed)
        self.partition, self.partitions, self.big, self.epoch = partition, partitions, big, epoch
        self.here = [str(InvocationId.derived(f"c{i}", "crafted", i)) for i in range(200)
                     if InvocationId.derived(f"c{i}", "crafted", i).partition(partitions) == partition][:3]
        self.elsewhere = [str(InvocationId.derived(f"c{i}", "crafted", i)) for i in range(200)
                          if InvocationId.derived(f"c{i}", "crafted", i).partition(partitions) != partition][:2]
        self.known = known_ids or []
        self.key_here = next(f"k{i}" for i in range(1000) if partition_for_key(f"k{i}", partitions) == partition)
        self.key_elsewhere = next(f"k{i}" for i in range(1000) if partition_for_key(f"k{i}", partitions) != partition)
        self.owners = 0

    def strings(self, field: str) -> list[str]:
        ids = [*self.here, *self.elsewhere, *self.known, "inv_1garbage", "inv_1" + "z" * 33, ""]
        pool = {
            "invocation_id": ids,
            "key": [self.key_here, self.key_elsewhere, "", "k" * self.big],
            "service": ["Counter", "Steps", "", "S" * self.big],
            "handler": ["add", "three", "", "h" * self.big],
            "handler_kind": ["EXCLUSIVE", "SHARED", "WORKFLOW", "ROOT"],
            "timer_key": [f"tm/{1:015d}/{self.here[0]}/sleep/1", f"in/{self.here[0]}", "meta/epoch", "tm/²/x",
                          "tm/" + "9" * 15 + "/" + "x" * self.big],
            "mode": ["attach", "output", "steal"],
            "command": ["cancel", "kill", "purge", "pause", "resume", "explode"],
            "topic": ["replies"],  # reply_to's topic is the commands part's to check, not this fuzzer's
            "name": ["go", "", "n" * self.big],
            "owner": [],  # unique per claim: see record()
        }
        return pool.get(field, ["x", "", "\u0000\uffff", "y" * self.big])

    def bytes_value(self) -> bytes:
        run = encode_message(pb.RunCommandMessage(result_completion_id=1, name="step"))
        return self.rng.choice([
            b"", b'"x"', run, run[:-1], encode_frame(MessageType.END, b""), b"\x00" * 3,
            encode_message(pb.OutputCommandMessage(value=pb.Value(content=b'"out"'))),
            encode_frame(MessageType.SET_STATE_COMMAND, b"\xff\xff"), b"z" * self.big])

    def value(self, schema: Any, field: str) -> Any:
        if isinstance(schema, list):  # a union
            branch = self.rng.choice(schema)
            return self.value(branch, field) if branch != "null" else None
        if isinstance(schema, dict):
            t = schema["type"]
            if t == "record":
                return {f["name"]: self.value(f["type"], f["name"]) for f in schema["fields"]}
            if t == "array":
                return [self.value(schema["items"], field) for _ in range(self.rng.randrange(0, 4))]
            if t == "map":
                return {self.rng.choice(["0", "1", "5", "x", "²"]): self.value(schema["values"], field)
                        for _ in range(self.rng.randrange(0, 3))}
            return self.value(t, field)
        if schema == "string":
            return self.rng.choice(self.strings(field) or ["x"])
        if schema == "int":
            return self.rng.choice(INT_EDGES)
        if schema == "long":
            if field in ("epoch",):
                return self.rng.choice((self.epoch, self.epoch + 1, 0, -1, 2**63 - 1))
            return self.rng.choice(LONG_EDGES)
        if schema == "bytes":
            return self.bytes_value()
        if schema == "boolean":
            return self.rng.random() < 0.5
        if isinstance(schema, str) and schema.startswith("reprise."):  # a shared named type (common.avsc)
            return self.value(codec.schema(schema.rsplit(".", 1)[1]), field)
        raise AssertionError(f"no values for {schema!r}")

    def record(self, kind: str) -> dict[str, Any]:
        rec = self.value(codec.schema(kind), "")
        if kind == "LeaderEpoch":
            # A forged claim in a new name each time: a forger that keeps answering the leader's claims
            # in one name makes it yield (partitions/leader/claims.py); only the topic's ACLs stop that one.
            self.owners += 1
            rec["owner"] = f"forger-{self.partition}-{self.owners}"
            rec["partition"] = self.rng.choice((self.partition, self.partition, (self.partition + 1) % 4, -1))
        return rec

    def encoded(self, kind: str) -> bytes:
        return codec.encode(kind, self.record(kind))
