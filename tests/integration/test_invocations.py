"""End to end: a real broker, real RocksDB files, a real restate-sdk service in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import Engine, Service, call_json, count, log_kinds, post

pytestmark = pytest.mark.kafka


@pytest.fixture
def engine(module_engine: Engine) -> Engine:
    """One engine for the module: each test uses keys and effect names of its own."""
    return module_engine


@pytest.fixture
def effects(module_effects: Path) -> Path:
    return module_effects


def test_three_run_steps_return_the_right_value_and_each_runs_once(engine: Engine, effects: Path) -> None:
    status, out = call_json(engine, "/Steps/three", "abc")
    assert (status, out) == (200, "abc:ABC")
    assert [count(effects, f"abc.{s}") for s in "abc"] == [1, 1, 1]


def test_terminal_error_arrives_with_its_status_and_message(engine: Engine) -> None:
    status, out = call_json(engine, "/Errors/terminal", "no such seat")
    assert status == 400
    assert out == {"code": 400, "message": "no such seat"}


def test_plain_exception_is_retried_until_the_third_attempt_succeeds(engine: Engine, effects: Path) -> None:
    status, out = call_json(engine, "/Errors/flaky", "f1")
    assert (status, out) == (200, 3)
    assert count(effects, "f1.attempt") == 3


def test_unknown_service_and_handler_get_404(engine: Engine) -> None:
    status, out = call_json(engine, "/Nope/handler", "x")
    assert status == 404 and out["code"] == 404 and "Nope" in out["message"]
    status, out = call_json(engine, "/Steps/nope", "x")
    assert status == 404 and "Steps/nope" in out["message"]


def test_method_other_than_get_or_post_gets_405(engine: Engine) -> None:
    status, body = post(engine.ingress + "/Steps/three", b'"x"', {"content-type": "application/json"}, method="PUT")
    assert status == 405 and json.loads(body)["code"] == 405


def test_bad_requests_get_clear_errors_and_write_nothing(own_engine: Engine, kafka_bootstrap: str,
                                                         namespace: str) -> None:
    engine = own_engine
    status, body = post(engine.ingress + "/Steps/three", b"{bad json", {"content-type": "application/json"})
    out = json.loads(body)
    assert status == 400 and out["code"] == 400 and "malformed JSON" in out["message"]
    status, body = post(engine.ingress + "/Steps/three", b'"' + b"a" * (5 * 1024 * 1024) + b'"',
                        {"content-type": "application/json"})
    assert status == 413 and "exceeds the maximum" in json.loads(body)["message"]
    status, body = post(engine.ingress + "/Steps/three/send?delay=soon", b'"x"', {"content-type": "application/json"})
    assert status == 400 and "bad delay" in json.loads(body)["message"]
    status, body = post(engine.ingress + "/Steps/three?delay=1s", b'"x"', {"content-type": "application/json"})
    assert status == 400 and "only allowed on /send" in json.loads(body)["message"]
    kinds = log_kinds(kafka_bootstrap, namespace)
    assert "LeaderEpoch" in kinds and "Invoke" not in kinds


def test_no_body_reaches_a_handler_without_input(engine: Engine) -> None:
    status, out = call_json(engine, "/Caller/hello")
    assert (status, out) == (200, "hello, nobody")


def test_service_to_service_call(engine: Engine, effects: Path) -> None:
    status, out = call_json(engine, "/Caller/relay", "rel")
    assert (status, out) == (200, "relayed rel:ABC")
    assert [count(effects, f"rel.{s}") for s in "abc"] == [1, 1, 1]


def test_uuid_and_random_are_stable_across_attempts(engine: Engine, effects: Path) -> None:
    status, out = call_json(engine, "/Steps/ids", "u1")
    assert status == 200
    seen = (effects / "u1.seen").read_text().splitlines()
    assert len(seen) >= 2, "the failing step makes the handler run a second attempt"
    assert set(seen) == {f"{out['uuid']} {out['random']}"}


def test_send_answers_202_with_an_invocation_id_and_runs(engine: Engine, effects: Path) -> None:
    status, out = call_json(engine, "/Steps/three/send", "snd")
    assert status == 202 and out["status"] == "Accepted" and out["invocationId"].startswith("inv_1")
    import time
    deadline = time.monotonic() + 30
    while count(effects, "snd.c") == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [count(effects, f"snd.{s}") for s in "abc"] == [1, 1, 1]


def test_http11_deployment(kafka_bootstrap: str, namespace: str, tmp_path: Path, effects: Path) -> None:
    svc = Service(effects, tmp_path / "svc11.log", http1=True)
    svc.start()
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "engine")
    try:
        eng.start()
        eng.register(svc.uri, use_http_11=True)
        assert call_json(eng, "/Steps/three", "h1") == (200, "h1:ABC")
    finally:
        eng.kill()
        svc.kill()


def test_service_openapi_document_names_paths_the_ingress_serves(engine: Engine, tmp_path: Path) -> None:
    """``GET /services/{s}/openapi`` for typed services registered on ``reprise dev`` is the document
    Restate 1.7.12 serves for them (tests/unit/fixtures/service_openapi.json), its server this ingress;
    and its call and send paths work there."""
    from tests.unit.test_service_openapi import FIXTURE, _expected

    typed = Service(tmp_path, tmp_path / "typed.log", app="tests.services.typed_app:app")
    typed.start()
    try:
        engine.register(typed.uri)
        for case in (c for c in FIXTURE["services"] if c["manifest"]["name"] in ("Shop", "Tally", "Approval")):
            status, raw = post(f"{engine.admin}/services/{case['manifest']['name']}/openapi", None, method="GET")
            assert status == 200, raw
            doc = json.loads(raw)
            expected = _expected(case)
            expected["servers"][0]["url"] = engine.ingress + "/"
            revision = json.loads(post(f"{engine.admin}/services/{case['manifest']['name']}", None,
                                       method="GET")[1])["revision"]
            expected["info"]["version"] = str(revision)  # the service's revision on this engine
            assert doc == expected
        place = json.loads(post(f"{engine.admin}/services/Shop/openapi", None, method="GET")[1])
        doc_url = place["servers"][0]["url"].rstrip("/")
        status, out = post(doc_url + "/restate/call/Shop/place", b'{"item": "tea", "quantity": 2}',
                           {"content-type": "application/json"})
        assert status == 200 and json.loads(out)["total_cents"] == 200
        status, out = post(doc_url + "/restate/send/Tally/oa-key/add", b"5", {"content-type": "application/json"})
        assert status == 202 and json.loads(out)["status"] == "Accepted"
    finally:
        typed.kill()
