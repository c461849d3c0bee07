"""Fuzzing the two ways in: HTTP requests at the ingress and raw records on the log topic.

Whatever arrives, the engine answers (a defined status and error body) or dead-letters, never
crashes, and every partition keeps serving afterwards. Crafted records of every internal kind
(valid Avro, hostile values) also leave each store a function of its log.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reprise.engine.kafka import produce_record
from reprise.engine.partitioning import partition_for_key
from reprise.schemas import codec
from tests.crafted import KINDS, Crafter
from tests.harness import ROOT, Engine, Service, call_json, post, request
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka
ALLOWED = {200, 202, 400, 404, 405, 409, 413, 429, 470, 500}


@pytest.fixture(scope="module")
def fuzz_engine(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "effects").mkdir()
    svc = Service(tmp / "effects", tmp / "svc.log")
    svc.start()
    eng = Engine(kafka_bootstrap, "tfuzz" + uuid.uuid4().hex[:10], tmp / "engine")
    eng.start()
    eng.register(svc.uri)
    yield eng
    eng.kill()
    svc.kill()


segment = st.one_of(st.sampled_from(["Steps", "Counter", "Nope", "three", "add", "nope", "k1", "send", "restate",
                                     "awakeables", "invocation", "workflow", "attach", "output", ""]),
                    st.text(min_size=1, max_size=12))
VALID_CALLS = {("Steps", "three"), ("Counter", "add")}


def _path(parts: list[str]) -> str:
    """Valid call targets become sends, so no fuzz case waits on a handler."""
    if len(parts) == 2 and tuple(parts) in VALID_CALLS or len(parts) == 3 and (parts[0], parts[2]) in VALID_CALLS:
        parts = [*parts, "send"]
    return "/" + "/".join(urllib.parse.quote(p, safe="") for p in parts)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(parts=st.lists(segment, min_size=0, max_size=5),
       method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
       body=st.one_of(st.none(), st.binary(max_size=300), st.just(b'{"a": 1}'), st.just(b'"text"')),
       content_type=st.sampled_from([None, "application/json", "text/plain", "application/octet-stream"]),
       idem=st.one_of(st.none(), st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8)),
       query=st.sampled_from(["", "?delay=1ms", "?delay=garbage", "?delay=PT0S", "?x=1"]))
def test_ingress_answers_every_request(fuzz_engine: Engine, parts: list[str], method: str, body: bytes | None,
                                       content_type: str | None, idem: str | None, query: str) -> None:
    headers = {}
    if content_type:
        headers["content-type"] = content_type
    if idem is not None:  # well-formed HTTP only: a malformed header line is the HTTP parser's business
        headers["idempotency-key"] = idem
    status, _, raw = request(fuzz_engine.ingress + _path(parts) + query, body, headers, method=method, timeout=30)
    assert status in ALLOWED, (status, raw[:200])
    if status >= 400:
        out = json.loads(raw)
        assert out["code"] == status and isinstance(out["message"], str)


def test_engine_still_serves_after_ingress_fuzz(fuzz_engine: Engine) -> None:
    assert call_json(fuzz_engine, "/Steps/three", "after-fuzz") == (200, "after-fuzz:ABC")


def test_raw_records_never_crash_or_stick_a_partition(fuzz_engine: Engine, kafka_bootstrap: str) -> None:
    ns = fuzz_engine.args[fuzz_engine.args.index("--namespace") + 1]
    rng = random.Random(7)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    valid = codec.encode("Invoke", {"service": "Steps", "handler": "three", "input": b'"raw"', "created_ms": 1})
    kinds = [k for (k, _) in codec.LOG_SCHEMAS] + ["Nope", ""]
    for i in range(400):
        choice = rng.random()
        if choice < 0.3:
            value = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        elif choice < 0.7:
            flipped = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            value = bytes(flipped)
        else:
            value = valid[: rng.randrange(len(valid))]
        headers = [] if rng.random() < 0.1 else [("reprise-kind", rng.choice(kinds).encode()),
                                                 ("reprise-version", rng.choice([b"1", b"2", b"x"]))]
        producer.produce(f"{ns}.log", value=value, headers=headers, partition=i % 4)
    assert producer.flush(30) == 0
    assert fuzz_engine.popen is not None and fuzz_engine.popen.poll() is None, "the engine died"
    for p in range(4):  # every partition still applies records and runs handlers
        key = next(f"z{i}" for i in range(1000) if partition_for_key(f"z{i}", 4) == p)
        status, out = call_json(fuzz_engine, f"/Counter/{key}/add", 1, timeout=60)
        assert status == 200 and isinstance(out, int), (p, status, out)
    wait_until(lambda: fuzz_engine.popen.poll() is None, 1, "the engine to be alive")




def _key_on(partition: int, prefix: str) -> str:
    return next(f"{prefix}{i}" for i in range(1000) if partition_for_key(f"{prefix}{i}", 4) == partition)


def _partitions_cli(engine: Engine, kafka: str, *args: str, **env: str) -> str:
    out = subprocess.run([sys.executable, "-m", "reprise", "partitions", *args, "--kafka", kafka, "--namespace",
                          engine.args[engine.args.index("--namespace") + 1], "--home", str(engine.home)],
                         capture_output=True, text=True, cwd=ROOT, timeout=600, env={**os.environ, **env})
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_crafted_records_of_every_kind_leave_every_partition_serving_and_the_store_a_function_of_its_log(
        engine: Engine, kafka_bootstrap: str, namespace: str) -> None:
    """Valid Avro of every internal kind with hostile values (tests/crafted.py), and oversized
    records, produced to each partition of a running engine's log, among invocations they can name."""
    known: dict[int, list[str]] = {p: [] for p in range(4)}
    for p in range(4):  # targets: one completed, one suspended on a durable sleep, per partition
        assert call_json(engine, f"/Counter/{_key_on(p, 'done')}/add", 1) == (200, 1)
        status, out = call_json(engine, f"/Counter/{_key_on(p, 'held')}/hold/send", 3_000)
        assert status == 202, out
        known[p].append(out["invocationId"])
    epochs = {row["partition"]: row["epoch"] for row in engine.admin_json("/partitions")["partitions"]}
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 8 * 1024 * 1024})
    refused: list[str] = []
    for p in range(4):
        crafter = Crafter(seed=p, partition=p, partitions=4, big=20_000, epoch=epochs[p], known_ids=known[p])
        for i in range(20 * len(KINDS)):
            kind = KINDS[i % len(KINDS)]
            producer.produce(f"{namespace}.log", partition=p, value=crafter.encoded(kind),
                             headers=codec.headers_for(kind))
            producer.poll(0)
        big = 3 * 1024 * 1024  # under the log's limit (4 MiB + 64 KiB): on the log, refused by the checks
        oversized = [("Invoke", {"service": "Counter", "handler": "add", "key": "k" * big, "input": b""}),
                     ("Signal", {"invocation_id": known[p][0], "name": "n" * big}),
                     ("InvokerEffects", {"invocation_id": known[p][0], "attempt": 1, "epoch": epochs[p],
                                         "timestamp_ms": 1, "deployment_id": "d" * big, "entries": [],
                                         "outcome": {}})]
        for kind, rec in oversized:
            produce_record(producer, f"{namespace}.log", p, kind, rec)
        # past the topic's limit: the broker refuses it, nothing reaches the partition
        produce_record(producer, f"{namespace}.log", p, "Invoke",
                       {"service": "Counter", "handler": "add", "input": b"x" * (5 * 1024 * 1024)},
                       on_delivery=lambda err, _m: refused.append(str(err)) if err else None)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert len(refused) == 4 and all("MSG_SIZE_TOO_LARGE" in e for e in refused), refused

    for p in range(4):  # every partition runs attempts, timers and its outbox (the reply) again
        assert call_json(engine, f"/Counter/{_key_on(p, 'after')}/hold", 200, timeout=90) == (200, "held"), p
        assert call_json(engine, f"/Counter/{_key_on(p, 'after')}/add", 1, timeout=90) == (200, 42), p
    assert engine.popen is not None and engine.popen.poll() is None, "the engine died"
    output = engine.output()
    assert "apply loop crashed" not in output and "Exception in thread" not in output, output[-3000:]
    assert "rejected (wrong_partition)" in output and "rejected (out_of_range)" in output
    metrics = post(f"{engine.admin}/metrics", None, method="GET")[1].decode()
    for kind, reason in (("Invoke", "too_large"), ("LeaderEpoch", "out_of_range"), ("Reply", "unknown_kind")):
        assert f'reprise_records_rejected_total{{kind="{kind}",partition="0",reason="{reason}"}}' in metrics, kind

    # The stores are a function of the log: what the engine made of these records equals a rebuild
    # that runs every record through apply() again (no changelog).
    engine.kill()
    before = _partitions_cli(engine, kafka_bootstrap, "digest")
    _partitions_cli(engine, kafka_bootstrap, "rebuild", "--all", REPRISE_CHANGELOG="0")
    assert _partitions_cli(engine, kafka_bootstrap, "digest", "--no-catch-up") == before
