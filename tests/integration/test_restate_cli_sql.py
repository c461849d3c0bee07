"""SQL introspection (``POST /query``) and the admin reads, cluster-wide, and Restate's CLI commands built on them.

Two topologies, one each for the module: ``reprise dev``, and a split cluster (two ``reprise
processor`` and a ``reprise ingress``, four partitions) where every process must answer for every
partition. Each is seeded the same way: an object's state, a handler suspended on a durable sleep,
and an object key held by one invocation with another waiting in its inbox. The queries are the ones
Restate's introspection docs show. Restate's CLI (``@restatedev/restate`` 1.7.12, installed from
npm once) runs its SQL-backed commands: ``invocations list|describe``, ``kv get|clear``, ``sql``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pytest

from tests.harness import ADMIN_TOKEN, ROOT, Engine, Service, call_json, post, request
from tests.integration.test_crash_recovery import wait_until
from tests.restate_cli import run_cli

pytestmark = pytest.mark.kafka


@dataclass
class Seeded:
    """A topology with what the seeding left in it: ``admins`` are every admin API it has."""

    ingress: Engine
    admins: list[Engine]
    home: Path
    ids: dict[str, str] = field(default_factory=dict)


def query(engine: Engine, sql: str, accept: str = "application/json") -> tuple[int, dict[str, str], bytes]:
    return request(engine.admin + "/query", json.dumps({"query": sql}).encode(),
                   {"content-type": "application/json", "accept": accept})


def rows(engine: Engine, sql: str) -> list[dict]:
    status, _, body = query(engine, sql)
    assert status == 200, f"{sql}: {status} {body!r}"
    return json.loads(body)["rows"]


def _seed(ingress: Engine, admins: list[Engine], home: Path) -> Seeded:
    seeded = Seeded(ingress, admins, home)
    assert call_json(ingress, "/Counter/sql-a/add", 7) == (200, 7)
    seeded.ids["sleepy"] = call_json(ingress, "/Steps/sleepy/send", {"name": "sql-s", "ms": 600_000})[1]["invocationId"]
    seeded.ids["hold"] = call_json(ingress, "/Counter/sql-q/hold/send", 600_000)[1]["invocationId"]
    seeded.ids["queued"] = call_json(ingress, "/Counter/sql-q/add/send", 1)[1]["invocationId"]

    def settled() -> bool:
        status, _, body = query(admins[0], "SELECT id, status FROM sys_invocation")
        found = {r["id"]: r["status"] for r in json.loads(body)["rows"]} if status == 200 else {}
        return (found.get(seeded.ids["sleepy"]) == found.get(seeded.ids["hold"]) == "suspended"
                and found.get(seeded.ids["queued"]) == "pending")

    wait_until(settled, 60, "the seeded invocations to suspend and queue")
    return seeded


@pytest.fixture(scope="module")
def dev(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    home, ns = tmp_path_factory.mktemp("sql-dev"), "t" + uuid.uuid4().hex[:10]
    (home / "effects").mkdir()
    svc = Service(home / "effects", home / "service.log")
    eng = Engine(kafka_bootstrap, ns, home / "engine")
    try:
        svc.start()
        eng.start()
        eng.register(svc.uri)
        yield _seed(eng, [eng], home)
    finally:
        eng.kill()
        svc.kill()


@pytest.fixture(scope="module")
def split(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    home, ns = tmp_path_factory.mktemp("sql-split"), "t" + uuid.uuid4().hex[:10]
    (home / "effects").mkdir()
    svc = Service(home / "effects", home / "service.log")
    procs = [Engine(kafka_bootstrap, ns, home / f"p{i}", role="processor") for i in range(2)]
    ingress = Engine(kafka_bootstrap, ns, home / "ingress", role="ingress")
    try:
        svc.start()
        for p in procs:
            p.start(90)
        ingress.start(90)
        ingress.register(svc.uri)
        wait_until(lambda: all(len(_owned(p)) == 2 for p in procs), 90, "each processor to own two partitions")
        yield _seed(ingress, [ingress, *procs], home)
    finally:
        for p in [ingress, *procs]:
            p.kill()
        svc.kill()


def _owned(processor: Engine) -> list[int]:
    status, body = post(processor.admin + "/partitions", None, method="GET")
    return [p["partition"] for p in json.loads(body)["partitions"]] if status == 200 else []


@pytest.fixture(params=["dev", "split"])
def topology(request: pytest.FixtureRequest) -> Seeded:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def test_the_queries_of_restates_introspection_docs_from_every_admin_api(topology: Seeded) -> None:
    ids = topology.ids
    for admin in topology.admins:  # the ingress and each processor answer for the whole cluster
        listed = {r["id"] for r in rows(admin, "select * from sys_invocation")}
        assert set(ids.values()) <= listed
        assert rows(admin, "select target_service_name, target_handler_name, status from sys_invocation "
                           f"where id = '{ids['sleepy']}'") == [
            {"target_service_name": "Steps", "target_handler_name": "sleepy", "status": "suspended"}]
        journal = rows(admin, f"select index, entry_type, name from sys_journal where id = '{ids['sleepy']}' "
                              "order by index")
        assert [(r["entry_type"], r.get("name")) for r in journal] == [
            ("Command: Input", ""), ("Command: Run", "before"), ("Notification: Run", None), ("Command: Sleep", "")]
        assert rows(admin, "select key, value_utf8 from state where service_name = 'Counter' "
                           "and service_key = 'sql-a'") == [{"key": "value", "value_utf8": "7"}]
        assert rows(admin, "select id, sequence_number from sys_inbox where service_name = 'Counter' "
                           "and service_key = 'sql-q'") == [{"id": ids["queued"], "sequence_number": 0}]
        assert rows(admin, "select invocation_id from sys_keyed_service_status where service_name = 'Counter' "
                           "and service_key = 'sql-q'") == [{"invocation_id": ids["hold"]}]
        by_status = {r["status"]: r["n"] for r in rows(admin, "select status, count(*) as n from sys_invocation "
                                                              "group by status")}
        assert by_status["suspended"] >= 2 and by_status["pending"] >= 1 and by_status["completed"] >= 1


def test_the_examples_of_the_introspection_docs_run(topology: Seeded) -> None:
    page = (ROOT / "docs" / "introspection.md").read_text()
    examples = re.findall(r"```sql\n(.*?)```", page, re.S)
    assert len(examples) >= 8
    for sql in examples:
        status, _, body = query(topology.ingress, sql)
        assert status == 200, f"{sql}: {status} {body!r}"
    journal = rows(topology.ingress, next(e for e in examples if "sys_journal j" in e))
    assert [r["entry_type"] for r in journal][-1] == "Command: Sleep"


def test_admin_reads_answer_for_every_partition_from_any_process(topology: Seeded) -> None:
    for admin in topology.admins:
        assert json.loads(post(admin.admin + "/services/Counter/state/sql-a", None, method="GET")[1]) == {
            "service": "Counter", "key": "sql-a", "state": {"value": "7"}}
        status, body = post(admin.admin + f"/invocations/{topology.ids['sleepy']}", None, method="GET")
        assert status == 200 and json.loads(body)["status"] == "SUSPENDED", body
        status, body = post(admin.admin + "/invocations?status=SUSPENDED", None, method="GET")
        assert {topology.ids["sleepy"], topology.ids["hold"]} <= {i["id"] for i in json.loads(body)["invocations"]}
        timers = json.loads(post(admin.admin + "/timers", None, method="GET")[1])["timers"]
        assert {topology.ids["sleepy"], topology.ids["hold"]} <= {t["invocation_id"] for t in timers}


def test_a_one_way_send_shows_its_sender(topology: Seeded) -> None:
    """As Restate: ``invoked_by`` ``service`` and the sending invocation's id."""
    assert call_json(topology.ingress, "/Caller/fan_out", {"n": 1, "key": "sql-sent"}) == (200, 1)
    [sender] = rows(topology.ingress, "select id from sys_invocation where target = 'Caller/fan_out'")
    wait_until(lambda: rows(topology.ingress, "select invoked_by, invoked_by_id from sys_invocation "
                                              "where target = 'Counter/sql-sent/add'")
               == [{"invoked_by": "service", "invoked_by_id": sender["id"]}], 30, "the sent invocation")


def _admin_json(admin: Engine, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
    status, raw = post(admin.admin + path, json.dumps(body).encode() if body is not None else None,
                       {"content-type": "application/json"}, method=method)
    return status, json.loads(raw) if raw else None


def test_subscriptions_and_kafka_clusters_from_every_process(split: Seeded) -> None:
    """They are records of the subscriptions topic: a processor reads and writes them as the ingress does."""
    made = []
    for admin in split.admins:  # each process creates one; every process then shows every one
        status, sub = _admin_json(admin, "POST", "/subscriptions", {
            "source": f"kafka://default/never-written-{admin.home.name}", "sink": "service://Counter/add"})
        assert status == 201 and sub is not None, sub
        made.append(sub)
    try:
        for admin in split.admins:
            listed = {s["id"] for s in _admin_json(admin, "GET", "/subscriptions")[1]["subscriptions"]}
            assert {s["id"] for s in made} <= listed
            assert _admin_json(admin, "GET", f"/subscriptions/{made[0]['id']}") == (200, made[0])
            clusters = _admin_json(admin, "GET", "/kafka-clusters")[1]["clusters"]
            assert [c["name"] for c in clusters] == ["default"]
            status, own = _admin_json(admin, "GET", "/kafka-clusters/default?include_subscriptions=true")
            assert status == 200 and {s["id"] for s in made} <= {s["id"] for s in own["subscriptions"]}
    finally:
        for admin, sub in zip(split.admins, made, strict=True):  # a processor deletes too
            assert _admin_json(admin, "DELETE", f"/subscriptions/{sub['id']}")[0] == 202


def test_arrow_is_the_default_answer_and_errors_are_restates(dev: Seeded) -> None:
    status, headers, body = query(dev.ingress, "SELECT * FROM sys_invocation", accept="*/*")
    assert status == 200 and headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(body).read_all()
    assert table.schema.field("created_at").type == pa.timestamp("ms", tz="+00:00")
    assert table.schema.field("journal_size").type == pa.uint32() and table.num_rows >= 4
    described = rows(dev.ingress, "DESCRIBE state")
    assert [(c["column_name"], c["data_type"]) for c in described][:3] == [
        ("partition_key", "UInt64"), ("scope", "LargeUtf8"), ("service_name", "LargeUtf8")]
    status, _, body = query(dev.ingress, "garbage")
    assert status == 400 and json.loads(body)["message"].startswith("Datafusion error: SQL error: ParserError")
    status, _, body = query(dev.ingress, "SELECT nope FROM state")
    assert status == 500 and "No field named nope" in json.loads(body)["message"]


def test_an_answer_is_cut_at_the_row_limit(dev: Seeded) -> None:
    status, headers, body = query(dev.ingress, "SELECT * FROM range(12000)")
    assert status == 200 and headers.get("x-reprise-truncated") == "true"
    assert len(json.loads(body)["rows"]) == 10_000
    status, headers, body = query(dev.ingress, "SELECT * FROM range(100)")
    assert len(json.loads(body)["rows"]) == 100 and "x-reprise-truncated" not in headers


def _scans(processor: Engine) -> dict[str, float]:
    text = post(processor.admin + "/metrics", None, method="GET")[1].decode()
    return {m[0]: float(m[1]) for m in re.findall(r'^reprise_query_partition_scans_total\{partition="(\d+)"\} (\S+)$',
                                                  text, re.M)}


def test_a_filter_on_the_key_reaches_only_its_partition(split: Seeded) -> None:
    processors = split.admins[1:]
    before = [_scans(p) for p in processors]
    assert rows(split.ingress, "select value_utf8 from state where service_name = 'Counter' "
                               "and service_key = 'sql-a'") == [{"value_utf8": "7"}]
    grew = [(i, part) for i, p in enumerate(processors) for part, n in _scans(p).items()
            if n > before[i].get(part, 0.0)]
    from reprise.engine.partitioning import partition_for_key

    wanted = partition_for_key("sql-a", 4)
    owner = next(i for i, p in enumerate(processors) if wanted in _owned(p))
    assert grew == [(owner, str(wanted))]


# Restate's CLI -------------------------------------------------------------------------------------


def cli(topology: Seeded, exe: Path, *args: str) -> str:
    token = None if topology.ingress.role == "dev" else ADMIN_TOKEN
    code, out = run_cli(exe, topology.ingress.admin, topology.ingress.ingress, topology.home, token, *args)
    assert code == 0, f"restate {' '.join(args)} exited {code}:\n{out}"
    return out


def test_cli_invocations_list_and_describe(topology: Seeded, cli_exe: Path) -> None:
    out = cli(topology, cli_exe, "invocations", "list")
    assert topology.ids["sleepy"] in out and topology.ids["queued"] in out and "suspended" in out
    out = cli(topology, cli_exe, "invocations", "describe", topology.ids["sleepy"])
    assert "Steps/sleepy" in out and "Command: Run [before]" in out and "Command: Sleep until" in out


def test_cli_sql(topology: Seeded, cli_exe: Path) -> None:
    out = cli(topology, cli_exe, "sql", "select service_key, value_utf8 from state where service_key = 'sql-a'")
    assert re.search(r"sql-a\s+7", out) and "1 rows" in out


def _restate_shaped_services(topology: Seeded) -> bool:
    status, body = post(topology.ingress.admin + "/services/Counter", None, method="GET")
    return status == 200 and json.loads(body).get("ty") == "VirtualObject"


def test_cli_kv_get(topology: Seeded, cli_exe: Path) -> None:
    if not _restate_shaped_services(topology):
        pytest.skip("needs GET /services/{name} in Restate's schema (the admin API's part of this work)")
    out = cli(topology, cli_exe, "kv", "get", "Counter", "sql-a")
    assert re.search(r"value\s+7", out)


def test_cli_kv_clear(topology: Seeded, cli_exe: Path) -> None:
    status, _ = post(topology.ingress.admin + "/services/Counter/state", b"{}", {"content-type": "application/json"})
    if not _restate_shaped_services(topology) or status in (404, 405):
        pytest.skip("needs POST /services/{name}/state (the admin API's part of this work)")
    assert call_json(topology.ingress, "/Counter/sql-kv/add", 5) == (200, 5)
    cli(topology, cli_exe, "kv", "clear", "Counter/sql-kv")
    wait_until(lambda: rows(topology.ingress, "select key from state where service_name = 'Counter' "
                                              "and service_key = 'sql-kv'") == [], 30, "the state to be cleared")
