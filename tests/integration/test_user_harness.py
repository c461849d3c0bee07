"""The example of docs/testing.md: testing the examples' services with ``reprise.testing``.

Written as a user writes it: the plugin's ``reprise_engine`` fixture runs ``examples/workflows/app.py``
embedded in an engine; the tests call it, crash the engine mid-invocation and resume it, move
durable timers ahead instead of waiting, and read state and journals.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from reprise.testing import EmbeddedEngine, InvocationFailed

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def reprise_app() -> str:
    return "examples.workflows.app:app"


@pytest.fixture(scope="module")
def outbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the example's steps record their side effects (one line per execution)."""
    return tmp_path_factory.mktemp("outbox")


@pytest.fixture(scope="module")
def reprise_engine_env(outbox: Path) -> dict[str, str]:
    return {"REPRISE_EXAMPLE_OUTBOX": str(outbox)}


def _lines(outbox: Path, kind: str, who: str) -> list[str]:
    f = outbox / kind
    return [line for line in f.read_text().splitlines() if line.startswith(who + " ")] if f.exists() else []


def test_a_workflow_waits_for_its_click_and_keeps_its_state(reprise_engine: EmbeddedEngine, outbox: Path) -> None:
    client, user = reprise_engine.client, "ada-" + uuid.uuid4().hex[:6]
    run = client.send("SignupWorkflow", "run", {"email": f"{user}@example.com"}, key=user)
    reprise_engine.wait_for_status(run, "SUSPENDED")  # waiting for the link to be clicked
    assert client.call("SignupWorkflow", "getStatus", key=user) == "waiting for the email link"
    secret = next(line for line in (outbox / "emails").read_text().splitlines()
                  if line.startswith(f"{user}@")).rsplit("secret=", 1)[1]
    client.call("SignupWorkflow", "click", secret, key=user)
    assert client.workflow_attach("SignupWorkflow", user) is True
    assert client.state("SignupWorkflow", user) == {"status": "verified"}
    journal = reprise_engine.journal(run)
    assert [e["name"] for e in journal if e["type"] == "RUN_COMMAND"] == ["create user", "send email"]
    assert "GET_PROMISE_COMMAND" in [e["type"] for e in journal]
    with pytest.raises(InvocationFailed) as refused:
        client.call("SignupWorkflow", "run", {"email": "again"}, key=user)  # a workflow runs once per id
    assert refused.value.status == 409


def test_a_crash_mid_invocation_resumes_and_completed_steps_do_not_run_again(reprise_engine: EmbeddedEngine,
                                                                             outbox: Path) -> None:
    client, user = reprise_engine.client, "bob-" + uuid.uuid4().hex[:6]
    # input (1), "pay" and its result (3), "subscribe a" and its result (5): the engine dies there
    reprise_engine.advance(timedelta(minutes=1))
    skew = reprise_engine.timer_skew()
    reprise_engine.crash_after(entries=5)
    inv = client.send("SubscriptionService", "add", {"user": user, "items": ["a", "b", "c"]})
    reprise_engine.wait_crashed()
    assert len(_lines(outbox, "subscriptions", user)) < 3, "the crash came after the invocation had finished"
    reprise_engine.restart()
    assert reprise_engine.timer_skew() == skew  # the timers' clock keeps its lead across the restart
    assert client.attach(inv) == f"subscribed {user} to 3 items"
    assert len(_lines(outbox, "payments", user)) == 1  # journaled before the crash: never run again
    assert sorted(set(_lines(outbox, "subscriptions", user))) == [f"{user} a", f"{user} b", f"{user} c"]
    assert _lines(outbox, "subscriptions", user).count(f"{user} a") == 1
    assert [e["type"] for e in reprise_engine.journal(inv)][-1] == "OUTPUT_COMMAND"


def test_a_send_delayed_by_a_day_runs_once_the_timers_move_a_day_ahead(reprise_engine: EmbeddedEngine,
                                                                       outbox: Path) -> None:
    client, user = reprise_engine.client, "cy-" + uuid.uuid4().hex[:6]
    inv = client.send("SubscriptionService", "add", {"user": user, "items": ["x"]}, delay=timedelta(days=1))
    reprise_engine.wait_for_status(inv, "SCHEDULED")
    reprise_engine.advance(timedelta(days=1))
    assert client.attach(inv) == f"subscribed {user} to 1 items"
    assert _lines(outbox, "payments", user) and _lines(outbox, "subscriptions", user) == [f"{user} x"]
