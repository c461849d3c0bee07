"""A service's journal retention (``PATCH /services/{s}`` ``journal_retention``), ``purge-journal`` and
``restart-as-new``, end to end against the real broker, as Restate 1.7 answers them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Engine, call_json, count, post
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka


def patch_service(engine: Engine, service: str, body: dict[str, Any]) -> None:
    status, raw = post(engine.admin + f"/services/{service}", json.dumps(body).encode(),
                       {"content-type": "application/json"}, method="PATCH")
    assert status == 200, raw
    for key, value in body.items():
        assert json.loads(raw)[key] == value


def send(engine: Engine, path: str, value: Any) -> str:
    status, body = call_json(engine, path + "/send", value)
    assert status == 202, body
    return str(body["invocationId"])


def query(engine: Engine, sql: str) -> list[dict[str, Any]]:
    status, raw = post(engine.admin + "/query", json.dumps({"query": sql}).encode(),
                       {"content-type": "application/json", "accept": "application/json"})
    assert status == 200, raw
    return list(json.loads(raw)["rows"])


def invocation(engine: Engine, inv: str) -> dict[str, Any]:
    rows = query(engine, f"SELECT status, journal_size, journal_retention, restarted_from, invoked_by, "
                         f"completion_result FROM sys_invocation WHERE id = '{inv}'")
    return rows[0] if rows else {}


def completed(engine: Engine, inv: str) -> dict[str, Any]:
    wait_until(lambda: invocation(engine, inv).get("status") == "completed", 60, f"{inv} to complete")
    return invocation(engine, inv)


def command(engine: Engine, inv: str, name: str) -> tuple[int, Any]:
    status, raw = post(engine.admin + f"/invocations/{inv}/{name}", None, method="PATCH")
    return status, json.loads(raw) if raw else None


def journal_entries(engine: Engine, inv: str) -> int:
    return int(query(engine, f"SELECT count(*) AS n FROM sys_journal WHERE id = '{inv}'")[0]["n"])


def test_journal_retention_drops_the_journal_and_keeps_the_status(module_engine: Engine) -> None:
    patch_service(module_engine, "Steps", {"journal_retention": "0s"})
    wait_until(lambda: "journal_retention" in module_engine.admin_json("/services/Steps"), 30, "the patch")
    dropped = send(module_engine, "/Steps/three", "jr0")
    row = completed(module_engine, dropped)
    assert (row["journal_size"], row["completion_result"]) == (0, "success")
    assert row["journal_retention"] == "P0D", row
    assert journal_entries(module_engine, dropped) == 0
    assert module_engine.admin_json(f"/invocations/{dropped}")["output"] == '"jr0:ABC"'  # the result stays
    status, body = command(module_engine, dropped, "restart-as-new")
    assert status == 410 and "input is not available" in body["message"]

    patch_service(module_engine, "Steps", {"journal_retention": "3s"})
    kept = send(module_engine, "/Steps/three", "jr3")
    assert completed(module_engine, kept)["journal_size"] > 0  # for 3 s after its completion
    wait_until(lambda: journal_entries(module_engine, kept) == 0, 30, "the journal retention to run out")
    assert invocation(module_engine, kept)["status"] == "completed"


def test_purge_journal_and_restart_as_new(module_engine: Engine, module_effects: Path) -> None:
    first = send(module_engine, "/Counter/restart/add", 5)
    assert completed(module_engine, first)["journal_size"] > 0
    status, body = command(module_engine, first, "restart-as-new")
    assert status == 200 and set(body) == {"new_invocation_id"}, body
    again = body["new_invocation_id"]
    row = completed(module_engine, again)
    assert (row["restarted_from"], row["invoked_by"]) == (first, "restart_as_new")
    assert call_json(module_engine, "/Counter/restart/get") == (200, 10)  # the same input ran again

    assert command(module_engine, first, "purge-journal") == (200, None)
    assert journal_entries(module_engine, first) == 0 and invocation(module_engine, first)["status"] == "completed"
    assert command(module_engine, first, "restart-as-new")[0] == 410

    running = send(module_engine, "/Counter/restart-hold/hold", 60_000)
    wait_until(lambda: invocation(module_engine, running).get("status") in ("running", "suspended"), 30, "hold")
    assert command(module_engine, running, "purge-journal")[0] == 409
    assert command(module_engine, running, "restart-as-new")[0] == 409
    assert command(module_engine, running, "kill")[0] == 200
    unknown = first[:-4] + ("aaaa" if not first.endswith("aaaa") else "bbbb")
    assert command(module_engine, unknown, "purge-journal")[0] == 404
    assert command(module_engine, unknown, "restart-as-new")[0] == 404
    assert command(module_engine, "inv_nope", "restart-as-new")[0] == 400


def test_restart_as_new_from_a_journal_prefix_replays_it(module_engine: Engine, module_effects: Path) -> None:
    patch_service(module_engine, "Steps", {"journal_retention": "2d"})
    first = send(module_engine, "/Steps/three", "rp")
    row = completed(module_engine, first)
    assert row["journal_size"] > 0 and row["journal_retention"] == "PT86400S"  # capped by its status's, a day
    status, body = command(module_engine, first, "restart-as-new?from=2")  # the input, step a and its result
    assert status == 200, body
    assert completed(module_engine, body["new_invocation_id"])["completion_result"] == "success"
    assert [count(module_effects, f"rp.{s}") for s in "abc"] == [1, 2, 2]  # a replayed, b and c ran again
    assert command(module_engine, first, "restart-as-new?from=99")[0] == 400
    assert command(module_engine, first, "restart-as-new?from=x")[0] == 400
    assert command(module_engine, first, "restart-as-new?from=1&deployment=dp_1nothere")[0] == 400


def test_completion_retention_is_shown_as_restate_shows_it(module_engine: Engine) -> None:
    """An idempotent invocation's is its service's idempotency retention (Restate 1.7.12 showed PT7200S
    for 2h), a plain one's the engine's retention of completed invocations (a day)."""
    patch_service(module_engine, "Steps", {"idempotency_retention": "2h"})
    status, raw = post(module_engine.ingress + "/Steps/three/send", b'"cr-idem"',
                       {"content-type": "application/json", "idempotency-key": "cr-idem"})
    assert status == 202, raw
    idem, plain = json.loads(raw)["invocationId"], send(module_engine, "/Steps/three", "cr-plain")
    for inv, shown in ((idem, "PT7200S"), (plain, "PT86400S")):
        completed(module_engine, inv)
        assert query(module_engine, f"SELECT completion_retention FROM sys_invocation WHERE id = '{inv}'") == [
            {"completion_retention": shown}]
