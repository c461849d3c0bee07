"""Workflows, durable promises, attach/output, awakeables and timers, end to end."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.harness import Background, Engine, call_json, count, post
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka


@pytest.fixture
def engine(module_engine: Engine) -> Engine:
    """One engine for the module (a test that kills it starts it again): each test uses keys and
    effect names of its own, but for the signup flow (it counts every email), which has its own."""
    return module_engine


@pytest.fixture
def effects(module_effects: Path) -> Path:
    return module_effects


def get_json(url: str) -> tuple[int, object]:
    status, body = post(url, None, method="GET")
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, body


def test_signup_flow(own_engine: Engine, tmp_path: Path) -> None:
    engine = own_engine
    outbox = tmp_path / "own-effects"  # the example writes its side effects where REPRISE_EXAMPLE_OUTBOX points
    status, out = call_json(engine, "/SignupWorkflow/ada/run/send", {"email": "ada@example.com"})
    assert status == 202 and out["status"] == "Accepted"
    status, out = call_json(engine, "/SignupWorkflow/ada/run/send", {"email": "ada@example.com"})
    assert status == 202 and out["status"] == "PreviouslyAccepted"
    wait_until(lambda: count(outbox, "emails") == 1, 30, "the email")
    status, out = get_json(engine.ingress + "/restate/workflow/SignupWorkflow/ada/output")
    assert status == 470 and out["code"] == 470
    assert call_json(engine, "/SignupWorkflow/ada/getStatus") == (200, "waiting for the email link")
    attached = Background(get_json, engine.ingress + "/restate/workflow/SignupWorkflow/ada/attach")
    secret = (outbox / "emails").read_text().split("secret=")[1].strip()
    assert call_json(engine, "/SignupWorkflow/ada/click", secret)[0] == 200
    assert attached.result() == (200, True)
    assert get_json(engine.ingress + "/restate/workflow/SignupWorkflow/ada/output") == (200, True)
    assert call_json(engine, "/SignupWorkflow/ada/getStatus") == (200, "verified")
    status, out = call_json(engine, "/SignupWorkflow/ada/run", {"email": "again@example.com"})
    assert status == 409 and "already invoked" in out["message"]
    assert count(outbox, "users") == 1 and count(outbox, "emails") == 1


def test_second_click_loses_to_the_first(engine: Engine, effects: Path) -> None:
    assert call_json(engine, "/SignupWorkflow/bob/run/send", {"email": "bob@example.com"})[0] == 202
    assert call_json(engine, "/SignupWorkflow/bob/click", "wrong")[0] == 200
    status, out = call_json(engine, "/SignupWorkflow/bob/click", "also wrong")
    assert status == 409 and "already completed" in out["message"]
    assert get_json(engine.ingress + "/restate/workflow/SignupWorkflow/bob/attach") == (200, False)


def test_unknown_workflow_output_is_404(engine: Engine) -> None:
    status, out = get_json(engine.ingress + "/restate/workflow/SignupWorkflow/nobody/output")
    assert status == 404 and out["code"] == 404


def test_subscription_service_each_step_once(engine: Engine, effects: Path) -> None:
    req = {"user": "u1", "items": ["news", "sports", "weather"]}
    assert call_json(engine, "/SubscriptionService/add", req) == (200, "subscribed u1 to 3 items")
    assert count(effects, "payments") == 1 and count(effects, "subscriptions") == 3


def test_workflow_sleep_survives_a_kill(engine: Engine, effects: Path) -> None:
    assert call_json(engine, "/Napper/n1/run/send", 4000)[0] == 202
    wait_until(lambda: count(effects, "n1.before") == 1, 30, "the first step")
    time.sleep(0.5)
    engine.kill()
    engine.start()
    assert get_json(engine.ingress + "/restate/workflow/Napper/n1/attach") == (200, "rested")
    assert count(effects, "n1.before") == 1 and count(effects, "n1.after") == 1


def test_awakeable_resolved_and_rejected_over_http(engine: Engine, effects: Path) -> None:
    pending = Background(call_json, engine, "/Waiter/awake", "aw1")
    wait_until(lambda: count(effects, "aw1.awakeable") == 1, 30, "the awakeable id")
    awakeable = (effects / "aw1.awakeable").read_text().strip()
    assert awakeable.startswith("sign_1")
    status, _ = post(f"{engine.ingress}/restate/awakeables/{awakeable}/resolve", b'"hello"',
                     {"content-type": "application/json"})
    assert status == 202
    assert pending.result() == (200, "woken with hello")

    pending = Background(call_json, engine, "/Waiter/awake", "aw2")
    wait_until(lambda: count(effects, "aw2.awakeable") == 1, 30, "the awakeable id")
    awakeable = (effects / "aw2.awakeable").read_text().strip()
    assert post(f"{engine.ingress}/restate/a/{awakeable}/reject", b"no thanks")[0] == 202
    status, out = pending.result()
    assert status == 500 and out["message"] == "no thanks"


def test_malformed_awakeable_id_is_400(engine: Engine) -> None:
    status, body = post(f"{engine.ingress}/restate/awakeables/sign_1nope/resolve", b"1")
    assert status == 400 and "malformed awakeable id" in json.loads(body)["message"]


def test_timer_fires_promptly_on_an_idle_engine(engine: Engine) -> None:
    """Prints how late a 1 s durable sleep completes; asserts only that it completes (no timed asserts)."""
    started = time.monotonic()
    status, _ = call_json(engine, "/Napper/t1/run", 1000)
    elapsed = time.monotonic() - started
    assert status == 200
    print(f"workflow with a 1000 ms sleep completed in {elapsed * 1000:.0f} ms")


