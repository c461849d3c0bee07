"""``reprise replay``: journals recorded by one version of a service, replayed against the next.

The engine runs ``tests/services/replay_v1.py`` embedded and records three invocations (two
completed, one in flight at a sleep of an hour); ``reprise replay`` then replays them from the log
against ``replay_v2.py``, where one handler takes its steps in the other order. The replay must name
that handler's first diverging entry, pass the unchanged ones, run none of the new code's closures
and write nothing to Kafka.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reprise.deploy.cli import main
from tests.harness import Engine, Service, call_json, drop_namespace, post

pytestmark = pytest.mark.kafka

V1 = "tests.services.replay_v1:app"
V2 = "embedded://tests.services.replay_v2:app"


@pytest.fixture(autouse=True)
def _effects_of_the_new_code(recorded: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPRISE_TEST_EFFECTS", str(recorded["effects"]))


@pytest.fixture(scope="module")
def recorded(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An engine's log with the three invocations of replay_v1 recorded (the engine stopped after)."""
    import uuid

    home, ns = tmp_path_factory.mktemp("replay"), "t" + uuid.uuid4().hex[:10]
    effects = home / "effects"
    eng = Engine(kafka_bootstrap, ns, home / "engine", partitions=2,
                 env={"REPRISE_EMBEDDED_APP": V1, "REPRISE_TEST_EFFECTS": str(effects)})
    try:
        eng.start()
        ids = {}
        for handler in ("swapped", "unchanged"):
            status, out = call_json(eng, f"/Steps/{handler}", "ada")
            assert (status, out) == (200, "fetched ada, stored"), eng.output()[-3000:]
        status, out = call_json(eng, "/Steps/napping/send", "bob")
        assert status == 202, out
        ids["napping"] = out["invocationId"]
        deadline = time.monotonic() + 60
        while True:  # accepted (202) once in the log; described once applied, suspended once it slept
            status, body = post(f"{eng.admin}/invocations/{ids['napping']}", method="GET")
            if status == 200 and json.loads(body)["status"] == "SUSPENDED":
                break
            assert time.monotonic() < deadline, (f"napping never suspended at its sleep: {status} {body!r}\n"
                                                 + eng.output()[-3000:])
            time.sleep(0.2)
        for inv in eng.admin_json("/invocations")["invocations"]:
            ids.setdefault(inv["handler"], inv["id"])
        eng.kill()  # the replay reads the log alone; stopped, the engine writes nothing the test would see
        yield {"engine": eng, "namespace": ns, "ids": ids, "effects": effects, "bootstrap": kafka_bootstrap}
    finally:
        eng.kill()
        drop_namespace(kafka_bootstrap, ns)


def _cli(rec: dict[str, Any], capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    """``reprise replay`` in this process (its output captured): the command's own code path, without
    an interpreter's start per call."""
    capsys.readouterr()
    code = main(["replay", "--kafka", rec["bootstrap"], "--namespace", rec["namespace"], *extra])
    return code, capsys.readouterr().out


def _replay(rec: dict[str, Any], capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    code, out = _cli(rec, capsys, "--output", "json", *extra)
    return code, json.loads(out)


def _end_offsets(bootstrap: str, namespace: str) -> dict[tuple[str, int], int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "replay-test"})
    try:
        out = {}
        for topic, md in c.list_topics(timeout=10).topics.items():
            if topic.startswith(namespace + "."):
                for p in md.partitions:
                    out[(topic, p)] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return out
    finally:
        c.close()


def test_changed_step_order_is_reported_at_its_first_entry_and_the_rest_replays_clean(
        recorded: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    before = _end_offsets(recorded["bootstrap"], recorded["namespace"])
    code, out = _replay(recorded, capsys, "--deployment", V2)
    assert code == 1, out
    by_handler = {r["target"].split("/")[-1]: r for r in out["invocations"]}
    assert set(by_handler) == {"swapped", "unchanged", "napping"}
    swapped = by_handler["swapped"]
    assert swapped["verdict"] == "diverged"
    # journal: 0 input, 1 run "fetch", 2 its completion, 3 run "store", ...: v2 runs "store" first
    assert (swapped["entry"], swapped["command_index"]) == (1, 1)
    assert swapped["recorded"]["type"] == "RUN_COMMAND" and swapped["recorded"]["name"] == "fetch"
    assert "fetch != store" in swapped["message"]
    assert by_handler["unchanged"]["verdict"] == "ok"
    assert by_handler["napping"]["verdict"] == "ok" and by_handler["napping"]["status"] == "SUSPENDED"
    assert (out["replayed"], out["ok"], out["diverged"]) == (3, 2, 1)
    # no side effects: v2's closures write a file each time one runs; nothing reached Kafka
    assert not list(recorded["effects"].glob("replay-v2-*"))
    assert all(not r["side_effects"] for r in out["invocations"])
    assert _end_offsets(recorded["bootstrap"], recorded["namespace"]) == before


def test_the_text_report_names_the_entry(recorded: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _cli(recorded, capsys, "--deployment", V2)
    assert code == 1
    line = next(x for x in out.splitlines() if "Steps/swapped" in x)
    assert line.endswith("diverged at entry 1 (command 1: recorded RUN_COMMAND 'fetch')"), out
    assert "name: fetch != store" in out
    assert out.rstrip().endswith("3 replayed, 2 ok, 1 diverged, 0 could not be replayed")


def test_unchanged_code_replays_clean(recorded: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _replay(recorded, capsys, "--deployment", "embedded://" + V1)
    assert code == 0, out
    assert [r["verdict"] for r in out["invocations"]] == ["ok"] * 3


def test_filters_pick_the_invocations_to_replay(recorded: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _replay(recorded, capsys, "--deployment", V2, "--invocation", recorded["ids"]["unchanged"])
    assert code == 0 and [r["invocation_id"] for r in out["invocations"]] == [recorded["ids"]["unchanged"]]
    code, out = _replay(recorded, capsys, "--deployment", V2, "--service", "Nobody", "--since", "1h")
    assert code == 0 and out["replayed"] == 0


def test_a_deployment_over_http_replays_the_same(recorded: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    service = Service(recorded["effects"], tmp_path / "v2.log", app=V2.removeprefix("embedded://"))
    service.start()  # hypercorn: h2c, as a deployment is usually served
    try:
        code, out = _replay(recorded, capsys, "--deployment", service.uri)
    finally:
        service.kill()
    assert code == 1
    assert sorted((r["target"], r["verdict"], r["entry"]) for r in out["invocations"]) == [
        ("Steps/napping", "ok", None), ("Steps/swapped", "diverged", 1), ("Steps/unchanged", "ok", None)]
    assert not list(recorded["effects"].glob("replay-v2-*"))


def test_a_namespace_without_a_log_is_an_error_not_a_clean_replay(recorded: dict[str, Any],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _cli({**recorded, "namespace": recorded["namespace"] + "-none"}, capsys, "--deployment", V2)
    assert code == 2
