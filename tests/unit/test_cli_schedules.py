"""``reprise schedules``: what the CLI sends to the admin API and how it prints the answers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reprise.deploy import cli
from reprise.partitions.core.apply.schedule import describe

ROW = {"schedule_id": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Paris", "catch_up": "once",
       "service": "Reports", "handler": "run", "key": None, "handler_kind": None, "input": b'{"a":1}',
       "paused": False, "created_ms": 1, "next_tick_ms": 5, "timer_key": "tm/x", "fired": 3, "skipped": 1,
       "last_tick_ms": 4, "last_fired_ms": 4, "last_invocation_id": "inv_1abc"}
SHOWN = {**describe(ROW), "partition": 2, "next_fire_times": ["2027-01-01T02:00:00Z"],
         "last_outcome": {"invocation_id": "inv_1abc", "status": "COMPLETED", "failure": None, "output": "ok"}}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, object]]:
    seen: list[tuple[str, str, object]] = []

    def fake(_args: Any, method: str, path: str, body: object = None) -> tuple[int, object]:
        seen.append((method, path, body))
        if path == "/schedules" and method == "GET":
            return 200, {"schedules": [SHOWN]}
        return (201 if method == "POST" else 200), SHOWN

    monkeypatch.setattr(cli, "_admin", fake)
    return seen


def run(*argv: str) -> int:
    return cli.main(["schedules", *argv])


def test_create_sends_the_definition(calls: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert run("create", "--cron", "*/2 * * * * *", "--target", "Ticks/record", "--body", '{"n": 1}',
               "--tz", "Europe/Paris", "--catch-up", "all", "--id", "t2") == 0
    assert calls == [("POST", "/schedules", {"cron": "*/2 * * * * *", "target": "Ticks/record",
                                             "timezone": "Europe/Paris", "catch_up": "all", "id": "t2",
                                             "body": {"n": 1}})]
    assert json.loads(capsys.readouterr().out)["id"] == "nightly"


def test_create_refuses_a_body_that_is_not_json(calls: list[Any]) -> None:
    assert run("create", "--cron", "* * * * *", "--target", "S/h", "--body", "{nope") == 2
    assert calls == []


def test_ls_and_describe_print_text_or_json(calls: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert run("ls") == 0
    out = capsys.readouterr().out
    assert "nightly" in out and "Reports/run" in out and "next=2027-01-01T02:00:00Z" in out
    assert run("describe", "nightly") == 0
    out = capsys.readouterr().out
    assert "next fires:  2027-01-01T02:00:00Z" in out and "inv_1abc (COMPLETED)" in out
    assert run("describe", "nightly", "--output", "json") == 0
    assert json.loads(capsys.readouterr().out)["last_outcome"]["status"] == "COMPLETED"
    assert run("pause", "nightly") == 0 and run("rm", "nightly") == 0
    assert [c[:2] for c in calls[-2:]] == [("PATCH", "/schedules/nightly/pause"), ("DELETE", "/schedules/nightly")]
    assert run("describe") == 2
