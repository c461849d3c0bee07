"""The limits of docs/limits.md, crossed end to end: each ends in a terminal failure that names the
limit (or 413 at the ingress), never in an invocation left running with nothing driving it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Engine, Service, call_json, engine_serving

pytestmark = pytest.mark.kafka

SIX_MB = 6 * 1024 * 1024


@pytest.fixture(scope="module")
def engine_h2c(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One engine and the test service over h2c (the SDK's BIDI_STREAM mode: a streaming attempt)."""
    tmp = tmp_path_factory.mktemp("limits")
    (tmp / "effects").mkdir()
    with engine_serving(kafka_bootstrap, "tlimits" + uuid.uuid4().hex[:8], tmp, tmp / "effects") as eng:
        yield eng


def _fails_naming_the_limit(engine: Engine, path: str, value: object, what: str) -> None:
    status, out = call_json(engine, path, value, timeout=90)
    assert status == 500, (status, out)
    assert what in out["message"] and "REPRISE_MAX_MESSAGE_BYTES" in out["message"], out


def test_a_ctx_run_result_over_the_limit_fails_the_call_at_once(engine_h2c: Engine) -> None:
    _fails_naming_the_limit(engine_h2c, "/Steps/big_run", SIX_MB, "ctx.run result")


def test_a_state_value_over_the_limit_fails_the_call(engine_h2c: Engine) -> None:
    _fails_naming_the_limit(engine_h2c, "/Counter/big/big_state", SIX_MB, "state value")
    status, out = call_json(engine_h2c, "/Counter/big/get")  # the object is not wedged
    assert status == 200


def test_an_output_over_the_limit_fails_the_call(engine_h2c: Engine) -> None:
    _fails_naming_the_limit(engine_h2c, "/Steps/big_output", SIX_MB, "the handler's output")


def test_values_under_the_limit_go_through(engine_h2c: Engine) -> None:
    assert call_json(engine_h2c, "/Steps/big_run", 3 * 1024 * 1024, timeout=90) == (200, 3 * 1024 * 1024)


def test_a_response_over_the_limit_over_http_1_1_fails_the_call(kafka_bootstrap: str, namespace: str,
                                                                tmp_path: Path, effects: Path) -> None:
    """Request/response over HTTP/1.1: the service's whole response is read with a bound."""
    svc = Service(effects, tmp_path / "svc1.log", http1=True)
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "engine")
    try:
        svc.start()
        eng.start()
        eng.register(svc.uri, use_http_11=True)
        _fails_naming_the_limit(eng, "/Steps/big_run", SIX_MB, "the response to /invoke/Steps/big_run")
        assert call_json(eng, "/Steps/big_run", 1000) == (200, 1000)
    finally:
        eng.kill()
        svc.kill()


def test_an_attempt_whose_record_vanished_is_re_driven_by_the_watchdog(kafka_bootstrap: str, namespace: str,
                                                                      tmp_path: Path, effects: Path) -> None:
    """The first effects record is lost (fault injection): its invocation stays INVOKED with nothing
    driving it until the watchdog fails that attempt; the retry then completes the call."""
    svc = Service(effects, tmp_path / "svc1.log", http1=True)
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "engine", env={
        "REPRISE_FAULT_LOSE_EFFECTS": "1", "REPRISE_ATTEMPT_WATCHDOG_S": "2"})
    try:
        svc.start()
        eng.start()
        eng.register(svc.uri, use_http_11=True)
        assert call_json(eng, "/Steps/big_run", 10, timeout=90) == (200, 10)
        assert "no live attempt for 2 s" in eng.output()
    finally:
        eng.kill()
        svc.kill()
