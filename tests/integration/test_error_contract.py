"""The error contract of docs/http-api.md, one row per case: status, body shape, nothing written."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.harness import Engine, log_kinds, post

pytestmark = pytest.mark.kafka

JSON = {"content-type": "application/json"}
BIG = b'"' + b"a" * (5 * 1024 * 1024) + b'"'

# (method, path, body, headers, status, words in the message)
ROWS = [
    ("POST", "/Nope/handler", b'"x"', JSON, 404, "service 'Nope' not found"),
    ("POST", "/Steps/nope", b'"x"', JSON, 404, "handler 'Steps/nope' not found"),
    ("PUT", "/Steps/three", b'"x"', JSON, 405, "method PUT not allowed"),
    ("DELETE", "/Steps/three", None, {}, 405, "method DELETE not allowed"),
    ("POST", "/Counter/add", b"1", JSON, 400, "expected /Counter/{key}/{handler}"),
    ("POST", "/Counter/%20/add", b"1", JSON, 400, "empty key"),
    ("POST", "/Steps/three/extra/segments", b'"x"', JSON, 400, "bad path"),
    ("POST", "/", b"", {}, 404, "no service in path"),
    ("POST", "/Steps/three", b"{bad json", JSON, 400, "malformed JSON body"),
    ("POST", "/Steps/three", BIG, JSON, 413, "exceeds the maximum"),
    ("POST", "/Steps/three", b'"x"', {**JSON, "x-big": "v" * 70_000}, 431, "request head exceeds"),
    ("POST", "/Steps/three/send?delay=soon", b'"x"', JSON, 400, "bad delay"),
    ("POST", "/Steps/three?delay=1s", b'"x"', JSON, 400, "only allowed on /send"),
    ("POST", "/Steps/three/send?delay=10000000000000000000", b'"x"', JSON, 400, "longer than the maximum"),
    ("POST", "/Steps/three/send?delay=P366D", b'"x"', JSON, 400, "longer than the maximum"),
    # once: 202, then dead-lettered past the Avro long; with a key the client then waited forever
    ("POST", "/Steps/three/send?delay=" + "9" * 26, b'"x"', {**JSON, "idempotency-key": "far"}, 400,
     "longer than the maximum"),
    ("POST", "/SignupWorkflow/w/run/send?delay=1s", b"{}", JSON, 400, "not allowed on a workflow's run"),
    ("POST", "/SignupWorkflow/w/run", b"{}", {**JSON, "idempotency-key": "k"}, 400, "not allowed on a workflow's run"),
    ("POST", "/Steps/three", b'"x"', {**JSON, "idempotency-key": " "}, 400, "idempotency-key header is empty"),
    ("POST", "/restate/awakeables/sign_1AAAA/resolve", b"1", {}, 400, "malformed awakeable id"),
    ("GET", "/restate/invocation/inv_bad/output", None, {}, 400, "malformed invocation id"),
    ("GET", "/restate/workflow/Steps/x/output", None, {}, 404, "workflow 'Steps' not found"),
]


@pytest.fixture(scope="module")
def shared_engine(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from tests.harness import Service

    tmp = tmp_path_factory.mktemp("contract")
    (tmp / "effects").mkdir()
    svc = Service(tmp / "effects", tmp / "svc.log")
    svc.start()
    # a namespace of its own: the temporary directory's name ("contract0") repeats across sessions
    eng = Engine(kafka_bootstrap, "tcontract" + uuid.uuid4().hex[:10], tmp / "engine")
    try:
        eng.start()
        eng.register(svc.uri)
        yield eng
    finally:  # a failed start must not leave the service running past the session
        eng.kill()
        svc.kill()


@pytest.mark.parametrize("method,path,body,headers,status,words", ROWS, ids=[f"{r[4]}:{r[1][:40]}" for r in ROWS])
def test_error_row(shared_engine: Engine, method: str, path: str, body: bytes | None, headers: dict[str, str],
                   status: int, words: str) -> None:
    got, raw = post(shared_engine.ingress + path, body, headers, method=method)
    out = json.loads(raw)
    assert got == status, out
    assert out["code"] == status and words in out["message"]
    assert set(out) == {"code", "message"}


def test_nothing_was_written_by_refused_requests(shared_engine: Engine, kafka_bootstrap: str) -> None:
    namespace = shared_engine.args[shared_engine.args.index("--namespace") + 1]
    kinds = log_kinds(kafka_bootstrap, namespace)
    assert "LeaderEpoch" in kinds and "Invoke" not in kinds and "Signal" not in kinds


def test_overload_gets_429_with_retry_after(kafka_bootstrap: str, namespace: str, tmp_path: Path, service) -> None:  # noqa: ANN001
    from tests.harness import Background, call_json, count
    from tests.integration.test_crash_recovery import wait_until

    eng = Engine(kafka_bootstrap, namespace, tmp_path / "eng", env={"REPRISE_MAX_INFLIGHT_REQUESTS": "1"})
    eng.start()
    try:
        eng.register(service.uri)
        effects = Path(service.env["REPRISE_TEST_EFFECTS"])
        busy = Background(call_json, eng, "/Waiter/awake", "ov")
        wait_until(lambda: count(effects, "ov.awakeable") == 1, 30, "the first call to be in flight")
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(eng.ingress + "/Steps/three", b'"x"', JSON), timeout=30)
        assert refused.value.code == 429 and refused.value.headers["retry-after"] == "1"
        assert json.loads(refused.value.read())["code"] == 429
        from tests.integration.test_metrics import scrape, total
        assert total(scrape(eng), "reprise_ingress_overloaded_total") == 1  # counted (docs/metrics.md)
        awakeable = (effects / "ov.awakeable").read_text().strip()
        assert post(f"{eng.ingress}/restate/awakeables/{awakeable}/resolve", b'"ok"', JSON)[0] == 202
        assert busy.result() == (200, "woken with ok")
    finally:
        eng.kill()
