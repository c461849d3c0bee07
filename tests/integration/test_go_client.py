"""The commands path from a client that is not Python: tests/clients/go (franz-go and hamba/avro,
nothing of Reprise but its schemas) writes commands and reads replies; HTTP checks what they did."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness import ROOT, Engine, call_json
from tests.integration.test_crash_recovery import wait_until
from tests.integration.test_kafka_native import make_topic, namespace_of, read_topic

pytestmark = pytest.mark.kafka

GO_CLIENT = ROOT / "tests" / "clients" / "go"


@pytest.fixture(scope="module")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client, built from the module cache (modules are fetched once through the Go proxy)."""
    go = shutil.which("go") or next((p for p in ("/usr/local/go/bin/go",) if os.access(p, os.X_OK)), None)
    if go is None:
        pytest.skip("the Go toolchain (go) is not installed: the Go client test needs it")
    binary = tmp_path_factory.mktemp("go") / "commands-client"
    out = subprocess.run([go, "build", "-o", str(binary), "."], cwd=GO_CLIENT, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "GOFLAGS": "-mod=mod -buildvcs=false"})
    assert out.returncode == 0, out.stderr[-3000:]
    return binary


def test_go_client_idempotency_one_object_and_an_error_reply(engine: Engine, kafka_bootstrap: str,
                                                             go_client: Path) -> None:
    ns = namespace_of(engine)
    replies = make_topic(kafka_bootstrap, f"{ns}.replies.go", 2)
    out = subprocess.run([str(go_client), "-bootstrap", kafka_bootstrap, "-namespace", ns,
                          "-schemas", str(ROOT / "schemas"), "-reply-topic", replies],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    got = result["replies"]

    # the same idempotency key twice: one invocation, run once, both commands answered with its result
    once = [got["once-0"], got["once-1"]]
    assert [r["failure"] for r in once] == [None, None] and [r["value"] for r in once] == ["1", "1"]
    assert once[0]["invocation_id"] == once[1]["invocation_id"] != ""
    assert call_json(engine, "/Counter/go-once/get") == (200, 1)
    assert call_json(engine, "/restate/invocation/Counter/go-once/add/go-order-1/output") == (200, 1)

    # one object's commands on every commands partition: its state is in one place, seen over HTTP
    spread = result["spread"]
    assert spread > 1
    wait_until(lambda: call_json(engine, "/Counter/go-spread/get") == (200, spread), 45, "every command counted")

    # a command the engine cannot accept: its error reply, and its dead letter
    assert got["bad-1"] == {"request_id": "bad-1", "invocation_id": "", "value": "",
                            "failure": {"code": 404, "message": "handler 'Counter/noSuchHandler' not found"}}
    letters = read_topic(kafka_bootstrap, f"{ns}.dead-letters", 1)
    assert [dict(m.headers())["reprise-dead-letter-reason"] for m in letters] == [
        b"404 handler 'Counter/noSuchHandler' not found"]
