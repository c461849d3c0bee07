"""A service's (or handler's) inactivity and abort timeouts, honoured on each attempt as Restate does:
a silent streaming attempt is asked to suspend, one stuck in user code is aborted and retried, a
request/response attempt (HTTP/1.1, or an inactivity timeout of 0) is bounded by its abort timeout,
and a service without timeouts of its own keeps the engine's."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Engine, Service, count, drop_namespace, post
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka
JSON = {"content-type": "application/json"}
APP = "tests.services.timeouts_app"
ENGINE_DEFAULT = "1m"  # long: only a service's own timeouts fire within a test


@pytest.fixture(scope="module")
def timeouts(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Path]]:
    """One engine whose defaults never fire in a test, serving the app over h2c and over HTTP/1.1."""
    home, ns = tmp_path_factory.mktemp("timeouts"), "t" + uuid.uuid4().hex[:10]
    effects = home / "effects"
    effects.mkdir()
    h2c = Service(effects, home / "h2c.log", app=f"{APP}:app")
    http1 = Service(effects, home / "http1.log", http1=True, app=f"{APP}:http1_app")
    eng = Engine(kafka_bootstrap, ns, home / "engine", env={
        "REPRISE_INACTIVITY_TIMEOUT_MS": "60000", "REPRISE_ABORT_TIMEOUT_MS": "60000"})
    try:
        h2c.start()
        http1.start()
        eng.start()
        eng.register(h2c.uri)
        eng.register(http1.uri, use_http_11=True)
        yield eng, effects
    finally:
        eng.kill()
        h2c.kill()
        http1.kill()
        drop_namespace(kafka_bootstrap, ns)


def send(eng: Engine, path: str, name: str) -> str:
    status, body = post(eng.ingress + path + "/send", json.dumps(name).encode(), JSON)
    assert status == 202, body
    return json.loads(body)["invocationId"]


def invocation(eng: Engine, inv: str) -> dict:
    return eng.admin_json(f"/invocations/{inv}")


def test_a_silent_streaming_attempt_suspends_after_its_inactivity_timeout_and_resumes(
        timeouts: tuple[Engine, Path]) -> None:
    eng, effects = timeouts
    inv = send(eng, "/Patient/wait", "pa")
    wait_until(lambda: count(effects, "pa.awakeable") == 1, 60, "the awakeable to be published")
    # the engine's default (60 s) would keep the stream open: only Patient's 1.5 s suspends it
    wait_until(lambda: invocation(eng, inv)["status"] == "SUSPENDED", 45, "the attempt to suspend")
    assert invocation(eng, inv)["attempts"] == 1
    awakeable = (effects / "pa.awakeable").read_text().strip()
    assert post(f"{eng.ingress}/restate/awakeables/{awakeable}/resolve", b'"hi"', JSON)[0] == 202
    status, out = post(f"{eng.ingress}/restate/invocation/{inv}/attach", None, {}, 60.0, "GET")
    assert (status, json.loads(out)) == (200, "woken with hi")
    assert count(effects, "pa.awakeable") == 1, "the published step kept its progress: not run again"


def test_attempts_stuck_in_user_code_are_aborted_and_retried_the_engine_default_elsewhere(
        timeouts: tuple[Engine, Path]) -> None:
    """Stuck (1 s + 1 s, streaming), StuckRequestResponse (inactivity 0: request/response over h2c,
    abort 1 s) and StuckHttp1 (HTTP/1.1, abort 1 s) are aborted again and again; Plain, started
    with them and as stuck, keeps the engine's 60 s and stays on its first attempt."""
    eng, effects = timeouts
    plain = send(eng, "/Plain/hang", "plain")
    stuck = {name: send(eng, f"/{svc}/hang", name) for svc, name in
             (("Stuck", "st"), ("StuckRequestResponse", "rr"), ("StuckHttp1", "h1"))}
    for name, inv in stuck.items():
        wait_until(lambda inv=inv: invocation(eng, inv)["attempts"] >= 3, 60, f"{name} to be aborted twice")
        assert count(effects, f"{name}.attempt") >= 2
        failure = invocation(eng, inv)["last_failure"]
        assert "abort timeout" in failure["message"] and "(1s)" in failure["message"], failure
    row = invocation(eng, plain)
    assert (row["attempts"], row["status"], count(effects, "plain.attempt")) == (1, "INVOKED", 1), row


def test_the_admin_api_shows_each_services_timeouts_and_a_patch_is_honoured(timeouts: tuple[Engine, Path]) -> None:
    """Last in the module: it patches Plain."""
    eng, effects = timeouts
    shown = {s: eng.admin_json(f"/services/{s}") for s in ("Plain", "Stuck", "StuckRequestResponse")}
    assert [(m["inactivity_timeout"], m["abort_timeout"]) for m in shown.values()] == [
        (ENGINE_DEFAULT, ENGINE_DEFAULT), ("1s", "1s"), ("0s", "1s")]
    status, body = post(eng.admin + "/services/Plain", b'{"inactivity_timeout": "1s", "abort_timeout": "1s"}',
                        JSON, method="PATCH")
    assert status == 200, body
    assert (json.loads(body)["inactivity_timeout"], json.loads(body)["abort_timeout"]) == ("1s", "1s")
    inv = send(eng, "/Plain/hang", "patched")  # a new attempt takes the patched timeouts
    wait_until(lambda: invocation(eng, inv)["attempts"] >= 2, 60, "the patched Plain to be aborted")
    assert count(effects, "patched.attempt") >= 1
