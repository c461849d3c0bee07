from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import pytest

from reprise.partitions.invoker.attempt_output import tagged_outcome
from reprise.schemas import codec


def test_every_log_kind_round_trips_with_headers() -> None:
    samples = {
        "Invoke": {"service": "S", "handler": "h", "input": b"1", "created_ms": 5},
        "InvokerEffects": {"invocation_id": "i", "attempt": 1, "epoch": 2, "timestamp_ms": 3, "entries": [b"\x00"],
                           "outcome": {"completions": [1], "signals": [1], "named_signals": []}},
        "TimerFired": {"timer_key": "tm/1", "epoch": 1, "timestamp_ms": 1},
        "CallCompleted": {"invocation_id": "i", "completion_id": 2, "value": b"v"},
        "LeaderEpoch": {"partition": 0, "epoch": 1, "owner": "o", "timestamp_ms": 1},
        "OutboxShipped": {"epoch": 1, "up_to_seq": 7},
        "Reply": {"ingress_id": "g", "request_id": "r", "invocation_id": "i", "failure": {"code": 400, "message": "m"}},
        "Deployment": {"id": "d", "uri": "u", "manifest_json": "{}", "created_ms": 1},
        "Signal": {"invocation_id": "i", "idx": 17, "value": b"v", "source": {"partition": 1, "seq": 2}},
        "AdminCommand": {"invocation_id": "i", "command": "cancel",
                         "reply_to": {"topic": "replies", "ingress_id": "a", "request_id": "r"}},
        "Subscription": {"id": "sub_1", "source_topic": "t", "service": "S", "handler": "h", "created_ms": 1,
                         "cluster": "c"},
        "KafkaCluster": {"name": "c", "properties": {"bootstrap.servers": "b:9092"}, "created_ms": 1},
        "RetentionSweep": {"epoch": 3, "before_ms": 1_000, "limit": 10},
        "Attach": {"invocation_id": "i", "mode": "output",
                   "reply_to": {"topic": "replies", "ingress_id": "a", "request_id": "r"}},
        "ScheduleCommand": {"schedule_id": "nightly", "op": "create", "cron": "0 3 * * *", "timezone": "UTC",
                            "service": "S", "handler": "h", "input": b"{}"},
        "StateMutation": {"service": "Counter", "key": "k", "version": None, "state": {"count": b"1"}},
    }
    assert set(samples) == {k for (k, _) in codec.LOG_SCHEMAS}
    for kind, rec in samples.items():
        kind2, version = codec.kind_of(codec.headers_for(kind))
        assert kind2 == kind
        out = codec.decode(kind, version, codec.encode(kind, rec))
        assert {k: out[k] for k in rec} == rec


def test_outcome_union_keeps_each_branch() -> None:
    """Untagged and tagged (the invoker names the branch), current bodies; v1 (no Progress) still reads."""
    outcomes = ({}, {"completions": [2], "signals": [1], "named_signals": ["n"]},
                {"code": 500, "message": "boom", "retryable": True, "next_retry_delay_ms": 10, "on_exhausted": None},
                {"proposed": [3, 4]})
    for outcome in outcomes:
        for sent in (outcome, tagged_outcome(outcome)):
            rec = {"invocation_id": "i", "attempt": 1, "epoch": 1, "timestamp_ms": 1, "entries": [], "outcome": sent}
            current = codec.CURRENT["InvokerEffects"]
            assert codec.decode("InvokerEffects", current, codec.encode("InvokerEffects", rec))["outcome"] == outcome
    v1 = fastavro.parse_schema(json.loads((Path(codec.__file__).parent / "invoker_effects.v1.avsc").read_text()),
                               named_schemas={})
    for outcome in outcomes[:3]:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, v1, {"invocation_id": "i", "attempt": 1, "epoch": 1, "timestamp_ms": 1,
                                             "entries": [], "outcome": outcome})
        assert codec.decode("InvokerEffects", 1, buf.getvalue())["outcome"] == outcome


def test_bad_input_gives_schema_errors() -> None:
    with pytest.raises(codec.SchemaError, match="lacks"):
        codec.kind_of([])
    with pytest.raises(codec.SchemaError, match="unknown record kind"):
        codec.kind_of([(codec.KIND_HEADER, b"Nope"), (codec.VERSION_HEADER, b"1")])
    with pytest.raises(codec.SchemaError, match="bad reprise-version"):
        codec.kind_of([(codec.KIND_HEADER, b"Invoke"), (codec.VERSION_HEADER, b"x")])
    with pytest.raises(codec.SchemaError):
        codec.decode("Invoke", 1, b"\xff\xff\xff")
    with pytest.raises(codec.SchemaError, match="does not match"):
        codec.encode("Invoke", {"service": 5})
