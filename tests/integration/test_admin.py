"""The admin API: health, registration (Restate's body and answers), services."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from reprise.engine.ids import InvocationId
from tests.harness import Engine, Service, free_port, post

pytestmark = pytest.mark.kafka


def get(url: str) -> tuple[int, object]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, json.loads(r.read() or b"null")


def test_health_and_services(engine: Engine) -> None:
    assert get(engine.admin + "/health")[0] == 200
    status, body = get(engine.admin + "/services")
    names = {s["name"]: s for s in body["services"]}
    assert status == 200 and {"Steps", "Errors", "Caller"} <= set(names)
    assert {h["name"] for h in names["Steps"]["handlers"]} >= {"three", "sleepy", "slow", "ids"}


def test_registration_answers(engine: Engine, service: Service) -> None:
    body = json.dumps({"uri": service.uri}).encode()
    status, out = post(engine.admin + "/deployments", body, {"content-type": "application/json"})
    assert status == 200, "the same deployment again is not a new one"
    assert json.loads(out)["services"] and json.loads(out)["sdk_version"].startswith("restate-sdk-python/")
    status, out = post(engine.admin + "/deployments", b"{nope", {"content-type": "application/json"})
    assert status == 400 and set(json.loads(out)) == {"message", "restate_code"}  # Restate's error body
    status, out = post(engine.admin + "/deployments", json.dumps({"uri": f"http://127.0.0.1:{free_port()}"}).encode(),
                       {"content-type": "application/json"})
    assert status == 500 and "discovery failed" in json.loads(out)["message"]  # Restate's status and code
    assert json.loads(out)["restate_code"] == "META0003"


def test_metrics_after_an_invocation(engine: Engine) -> None:
    assert post(engine.ingress + "/Steps/three", b'"m"', {"content-type": "application/json"})[0] == 200

    def send(path: str, body: bytes) -> str:
        return json.loads(post(engine.ingress + path, body, {"content-type": "application/json"})[1])["invocationId"]

    send("/Counter/m/hold/send", b"3000")
    queued = send("/Counter/m/add/send", b"1")  # waits behind hold: same key
    partition = InvocationId.parse(queued).partition(4)
    engine.admin_json("/partitions/snapshot", method="POST")
    time.sleep(1.5)  # lag and counts are sampled once a second
    status, body = post(engine.admin + "/metrics", None, method="GET")
    text = body.decode()
    assert status == 200
    for name in ("reprise_records_applied_total", "reprise_apply_batch_seconds_count",
                 "reprise_attempt_seconds_count", 'reprise_attempts_total{outcome="ended"}',
                 "reprise_consumer_lag_records", "reprise_partitions_led 4.0",
                 f'reprise_invocations{{partition="{partition}",status="INBOXED"}} 1.0',
                 f'reprise_inbox_depth{{partition="{partition}"}} 1.0',
                 f'reprise_snapshot_age_seconds{{partition="{partition}"}}'):
        assert name in text, (name, text[-4000:])


def test_a_new_engine_process_sees_registered_deployments(engine: Engine) -> None:
    """Deployments are durable: a restarted engine serves the services without re-registering."""
    engine.kill()
    engine.start()
    status, out = post(engine.ingress + "/Steps/three", b'"again"', {"content-type": "application/json"})
    assert (status, json.loads(out)) == (200, "again:ABC")
