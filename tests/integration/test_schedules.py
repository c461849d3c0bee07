"""Durable cron schedules end to end: a seconds-level schedule fires each tick exactly once across a
kill -9 of the engine and a rebuild of its stores from the log (catch-up ``all``), ``rm`` stops it,
and the admin API refuses what cannot be a schedule."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.harness import ROOT, Engine, drop_namespace, engine_serving, post
from tests.integration.test_crash_recovery import wait_until
from tests.integration.test_rebuild import partitions_cli

pytestmark = pytest.mark.kafka
SID = "every-2s"


@pytest.fixture(scope="module")
def effects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("schedule-effects")


@pytest.fixture(scope="module")
def ticks_engine(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, effects: Path) -> Iterator[Engine]:
    """One engine for the module (the admin API's checks first, then the kill and rebuild)."""
    home, ns = tmp_path_factory.mktemp("schedules"), "t" + uuid.uuid4().hex[:10]
    try:
        with engine_serving(kafka_bootstrap, ns, home, effects, app="tests.services.schedule_app:app") as eng:
            yield eng
    finally:
        drop_namespace(kafka_bootstrap, ns)


def cli(engine: Engine, *args: str) -> tuple[int, str]:
    ns = engine.args[engine.args.index("--namespace") + 1]
    out = subprocess.run([sys.executable, "-m", "reprise", "schedules", *args, "--admin-port", str(engine.admin_port),
                          "--namespace", ns], capture_output=True, text=True, cwd=ROOT, timeout=120)
    return out.returncode, out.stdout + out.stderr


def ticks(effects: Path) -> list[int]:
    """The tick (ms) of every recorded fire, one per invocation that ran its step."""
    f = effects / "ticks"
    if not f.exists():
        return []
    return [int(datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp() * 1000)
            for line in f.read_text().splitlines() if line]


def assert_each_tick_once(effects: Path) -> list[int]:
    seen = ticks(effects)
    dupes = [t for t, n in Counter(seen).items() if n > 1]
    assert not dupes, f"ticks fired more than once: {dupes}"
    span = sorted(seen)
    missing = sorted(set(range(span[0], span[-1] + 1, 2_000)) - set(span))
    assert not missing, f"ticks lost between {span[0]} and {span[-1]}: {missing}"
    return span


def test_the_admin_api_refuses_what_cannot_be_a_schedule(ticks_engine: Engine) -> None:
    def create(body: object) -> tuple[int, str]:
        status, raw = post(ticks_engine.admin + "/schedules", json.dumps(body).encode(),
                           {"content-type": "application/json"})
        return status, raw.decode()

    good = {"cron": "0 3 * * *", "target": "Ticks/record", "body": "x", "id": "nightly", "timezone": "Europe/Paris"}
    for change, word in [({"cron": "61 * * * *"}, "minute"), ({"cron": "0 0 30 2 *"}, "day-of-month"),
                         ({"timezone": "Mars/Olympus"}, "time zone"), ({"target": "Nope/record"}, "no handler"),
                         ({"target": "Ticks/k/record"}, "service"), ({"target": "Ticks"}, "expected"),
                         ({"catch_up": "sometimes"}, "catch_up"), ({"body": "x" * 70_000}, "bytes"),
                         ({"id": "../etc"}, "schedule id")]:
        status, text = create({**good, **change})
        assert status == 400 and word in text, (change, status, text)
    assert create(good)[0] == 201
    assert create(good)[0] == 200  # the same create again
    assert create({**good, "cron": "0 4 * * *"})[0] == 409
    status, raw = post(ticks_engine.admin + "/schedules/nightly/pause", None, method="PATCH")
    assert status == 200 and json.loads(raw)["paused"] and json.loads(raw)["next_fire_times"] == []
    listed = json.loads(post(ticks_engine.admin + "/schedules", None, method="GET")[1])["schedules"]
    assert [s["id"] for s in listed] == ["nightly"] and listed[0]["timezone"] == "Europe/Paris"
    status, raw = post(ticks_engine.admin + "/schedules/nightly/resume", None, method="PATCH")
    assert status == 200 and json.loads(raw)["next_fire_times"][0].endswith(":00:00Z")
    assert post(ticks_engine.admin + "/schedules/nightly", None, method="DELETE")[0] == 200
    assert post(ticks_engine.admin + "/schedules/nightly", None, method="DELETE")[0] == 404


def test_a_seconds_schedule_fires_each_tick_once_across_a_kill_and_a_rebuild_and_rm_stops_it(
        ticks_engine: Engine, effects: Path, kafka_bootstrap: str) -> None:
    eng = ticks_engine
    code, out = cli(eng, "create", "--cron", "*/2 * * * * *", "--target", "Ticks/record", "--body", '"t"',
                    "--catch-up", "all", "--id", SID)
    assert code == 0, out
    assert json.loads(out)["next_fire_times"], out
    wait_until(lambda: len(ticks(effects)) >= 2, 60, "two ticks")
    def described() -> dict:
        code, out = cli(eng, "describe", SID, "--output", "json")
        assert code == 0, out
        return json.loads(out)
    first = described()
    assert first["fired"] >= 1 and len(first["next_fire_times"]) == 5, first
    # the last fire's outcome comes from its invocation, once that has run
    wait_until(lambda: (described()["last_outcome"] or {}).get("status") == "COMPLETED", 60, "a completed fire")

    eng.kill()  # kill -9 between ticks or in the middle of one
    down_at = int(time.time() * 1000)
    time.sleep(2)  # with the restart, at least one tick comes due while nothing runs
    eng.start()
    up_at = int(time.time() * 1000)
    wait_until(lambda: any(t > up_at for t in ticks(effects)), 60, "ticks after the restart")
    assert [t for t in ticks(effects) if down_at < t < up_at], "no tick of the downtime was caught up"
    assert_each_tick_once(effects)

    # The log alone keeps it: stores rebuilt from the topic, to the same digest, and it goes on.
    eng.kill()
    ns = eng.args[eng.args.index("--namespace") + 1]
    before = partitions_cli(kafka_bootstrap, ns, eng.home, "digest")
    partitions_cli(kafka_bootstrap, ns, eng.home, "rebuild", "--all")
    assert partitions_cli(kafka_bootstrap, ns, eng.home, "digest", "--no-catch-up") == before
    rebuilt_at = int(time.time() * 1000)
    eng.start()
    wait_until(lambda: any(t > rebuilt_at for t in ticks(effects)), 60, "ticks after the rebuild")
    assert_each_tick_once(effects)

    code, out = cli(eng, "rm", SID)
    assert code == 0, out
    removed_at = int(time.time() * 1000)
    assert cli(eng, "describe", SID)[0] != 0
    time.sleep(3)  # a tick's time and more: none fires (one in flight is a tick before the rm)
    late = [t for t in ticks(effects) if t > removed_at]
    assert not late, f"ticks fired after rm: {late}"
    assert_each_tick_once(effects)
