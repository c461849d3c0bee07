"""Restate's own CLI (``@restatedev/restate`` 1.7.12, from npm) against Reprise, as an operator runs it.

One engine per topology for the module: ``reprise dev``, and a split cluster (two ``reprise
processor`` and a ``reprise ingress``). The CLI is installed once into ``.reprise/restate-cli``; the
test is skipped only where npm cannot install it. ``invocations cancel|kill|purge`` and ``deployments
remove`` first ask ``POST /query`` which invocations match (tests/integration/test_restate_cli_sql.py
covers the CLI's SQL commands).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.harness import ADMIN_TOKEN, Engine, Proc, Service, drop_namespace, post, request, wait_http

pytestmark = pytest.mark.kafka

class Cli:
    """Runs ``restate`` against one engine's admin API and ingress, non-interactively."""

    def __init__(self, exe: Path, admin: str, ingress: str, home: Path, token: str | None) -> None:
        self.exe = exe
        self.env = {**os.environ, "RESTATE_ADMIN_URL": admin, "RESTATE_INGRESS_URL": ingress,
                    "RESTATE_CLI_CONFIG_HOME": str(home), "NO_COLOR": "1", "CI": "1"}
        if token:
            self.env["RESTATE_AUTH_TOKEN"] = token

    def run(self, *args: str) -> tuple[int, str]:
        done = subprocess.run([str(self.exe), "-y", "--request-timeout", "60000", "--connect-timeout", "10000", *args],
                              env=self.env, capture_output=True, timeout=120)
        return done.returncode, done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")

    def __call__(self, *args: str) -> str:
        rc, out = self.run(*args)
        assert rc == 0, f"restate {' '.join(args)} exited {rc}:\n{out}"
        return out


class Topology:
    def __init__(self, admin_engine: Engine, service: Service, cli: Cli) -> None:
        self.engine, self.service, self.cli = admin_engine, service, cli


def _start_topology(kind: str, bootstrap: str, home: Path, exe: Path) -> Iterator[Topology]:
    ns = "t" + uuid.uuid4().hex[:10]
    effects = home / "effects"
    effects.mkdir(parents=True)
    service = Service(effects, home / "service.log")
    engines: list[Engine] = []
    try:
        service.start()
        if kind == "dev":
            engines.append(Engine(bootstrap, ns, home / "dev", partitions=2))
        else:
            engines += [Engine(bootstrap, ns, home / "ingress", partitions=2, role="ingress"),
                        Engine(bootstrap, ns, home / "p1", partitions=2, role="processor"),
                        Engine(bootstrap, ns, home / "p2", partitions=2, role="processor")]
        for e in engines:  # the three processes start side by side
            Proc.start(e)
        for e in engines:
            wait_http(e.admin + "/health" if e.role == "processor" else e.ingress + "/restate/health", 90)
        front = engines[0]
        _until_every_partition_answers(front)
        cli = Cli(exe, front.admin, front.ingress, home / "cli-config", ADMIN_TOKEN if kind != "dev" else None)
        yield Topology(front, service, cli)
    finally:
        for e in engines:
            e.kill()
        service.kill()
        drop_namespace(bootstrap, ns)


@pytest.fixture(scope="module", params=["dev", "split"])
def topo(request: pytest.FixtureRequest, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory,
         cli_exe: Path) -> Iterator[Topology]:
    yield from _start_topology(request.param, kafka_bootstrap, tmp_path_factory.mktemp(request.param), cli_exe)


def _registered(topo: Topology) -> str:
    """Register the test service with the CLI (once per topology); its deployment id."""
    deps = json.loads(post(topo.engine.admin + "/deployments", None, method="GET")[1])["deployments"]
    if not deps:
        out = topo.cli("deployments", "register", topo.service.uri)
        assert "Steps" in out and "Counter" in out, out
        deps = json.loads(post(topo.engine.admin + "/deployments", None, method="GET")[1])["deployments"]
    return deps[0]["id"]


def _until_every_partition_answers(front: Engine, timeout: float = 90.0) -> None:
    """Until the processors' group has settled: a query over every partition answers (a partition with no
    owner yet answers 503)."""
    query, deadline = json.dumps({"query": "SELECT count(*) AS n FROM sys_invocation_status"}).encode(), \
        time.monotonic() + timeout
    while True:
        status, body = post(front.admin + "/query", query, {"content-type": "application/json",
                                                            "accept": "application/json"})
        if status == 200 or time.monotonic() > deadline:
            assert status == 200, body
            return
        time.sleep(0.5)


def test_whoami(topo: Topology) -> None:
    out = topo.cli("whoami")
    assert f"Admin Service '{topo.engine.admin}/' is healthy" in out, out
    assert topo.engine.ingress in out, out


def test_deployments_register_list_describe(topo: Topology) -> None:
    dep = _registered(topo)
    listed = topo.cli("deployments", "list")
    assert dep in listed and topo.service.uri in listed and "Counter [1]" in listed, listed
    described = topo.cli("deployments", "describe", dep)
    assert dep in described and "Bidirectional Stream" in described and "restate-sdk-python/" in described
    assert "Napper" in described and "Revision: 1" in described, described
    again = topo.cli("deployments", "register", "--force", topo.service.uri)  # same uri, forced: revision 2
    assert dep in again, again
    assert "Counter [2]" in topo.cli("deployments", "list")


def test_running_invocations_are_counted_from_any_admin_endpoint(topo: Topology) -> None:
    """Any admin endpoint counts a deployment's running invocations over the whole cluster: ``reprise
    dev`` from its own partitions, an ingress (which holds none) by asking the processors."""
    dep = _registered(topo)
    deadline = time.monotonic() + 30
    while True:  # a partition between owners (a rebalance) leaves the count out until it has one again
        status, body = post(f"{topo.engine.admin}/deployments/{dep}", None, method="GET")
        described = json.loads(body)
        if "active_invocations" in described or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 200 and isinstance(described.get("active_invocations"), int), described


def test_services_list_describe_config_view(topo: Topology) -> None:
    _registered(topo)
    listed = topo.cli("services", "list")
    for line in ("Counter", "Napper", "Steps"):
        assert line in listed, listed
    assert "virtual object" in listed and "workflow" in listed, listed
    described = topo.cli("services", "describe", "Counter")
    assert "VirtualObject" in described and "slow_add" in described and "JSON integer" in described, described
    config = topo.cli("services", "config", "view", "Napper")
    assert "Workflow retention time:  1d" in config and "Public:  true" in config, config


def test_services_config_patch_is_honoured(topo: Topology) -> None:
    _registered(topo)
    topo.cli("services", "config", "patch", "Errors", "--public", "false")
    status, body = post(topo.engine.ingress + "/Errors/terminal", b'"x"', {"content-type": "application/json"})
    assert (status, json.loads(body)["message"]) == (400, "the invoked service is not public")
    topo.cli("services", "config", "patch", "Errors", "--public", "true")
    assert "Public:  true" in topo.cli("services", "config", "view", "Errors")
    topo.cli("services", "config", "patch", "Steps", "--idempotency-retention", "2h")
    status, body = post(topo.engine.ingress + "/Steps/three", b'"cfg"', {"content-type": "application/json",
                                                                        "idempotency-key": "cfg-1"})
    assert status == 200, body
    status, headers, _ = request(topo.engine.ingress + "/Steps/three", b'"cfg"',
                                 {"content-type": "application/json", "idempotency-key": "cfg-1"})
    expires = datetime.fromisoformat(headers["idempotency-expires"].replace("Z", "+00:00"))
    assert timedelta(hours=1) < expires - datetime.now(UTC) <= timedelta(hours=2, minutes=1), expires


def test_setting_an_objects_state_from_the_admin_endpoint(topo: Topology) -> None:
    """Restate's POST /services/{s}/state from the front process (an ingress in the split cluster)."""
    _registered(topo)
    body = json.dumps({"object_key": "cli-state", "new_state": {"value": list(b"12")}}).encode()
    status, out = post(topo.engine.admin + "/v4/services/Counter/state", body, {"content-type": "application/json"})
    assert (status, out) == (202, b"")
    status, out = post(topo.engine.ingress + "/Counter/cli-state/add", b"1", {"content-type": "application/json"})
    assert (status, json.loads(out)) == (200, 13)


def test_a_forced_reregistration_drops_the_services_it_no_longer_serves(topo: Topology, tmp_path: Path) -> None:
    _registered(topo)
    effects = tmp_path / "effects"
    effects.mkdir()
    everything = Service(effects, tmp_path / "all.log")
    everything.start()
    port, greeter = everything.port, None
    try:
        out = topo.cli("deployments", "register", everything.uri)
        assert "Counter" in out, out
        everything.kill()
        greeter = Service(effects, tmp_path / "greeter.log", app="examples.greeter.app:app", port=port)
        greeter.start()
        forced, deadline = json.dumps({"uri": greeter.uri, "force": True}).encode(), time.monotonic() + 30
        while time.monotonic() < deadline:  # until the greeter answers discovery on the old port
            status, out = post(topo.engine.admin + "/deployments", forced, {"content-type": "application/json"})
            if status != 500 or b"cannot reach" not in out:  # Restate: a failed discovery is 500
                break
            time.sleep(0.5)
        assert status == 200, out
        dep = json.loads(out)["id"]
        services = json.loads(post(topo.engine.admin + "/services", None, method="GET")[1])["services"]
        served = {s["name"]: s["deployment_id"] for s in services}
        assert served["Greeter"] == dep and dep not in {v for k, v in served.items() if k != "Greeter"}, served
        described = topo.cli("deployments", "describe", dep)
        assert "Greeter" in described and "Counter" not in described, described
    finally:
        everything.kill()
        if greeter is not None:
            greeter.kill()


def test_invocations_cancel_kill_restart_purge(topo: Topology) -> None:
    _registered(topo)

    def send(path: str, body: bytes) -> str:
        status, out = post(topo.engine.ingress + path, body, {"content-type": "application/json"})
        return json.loads(out)["invocationId"]

    cancelled, killed = send("/Counter/cli-c/block/send", b'"x"'), send("/Counter/cli-k/block/send", b'"x"')
    _until(topo, ("invocations", "cancel", cancelled), "Cancelled 1 invocations")
    _until(topo, ("invocations", "kill", killed), "Killed 1 invocations")
    done = send("/Steps/three/send", b'"cli-q"')
    assert post(f"{topo.engine.ingress}/restate/invocation/{done}/attach", None, method="GET")[0] == 200
    _until(topo, ("invocations", "restart-as-new", done), "Restarted 1 invocations")
    _until(topo, ("invocations", "purge", done), "Purged 1 invocations")


def _until(topo: Topology, args: tuple[str, ...], expected: str, timeout: float = 30.0) -> None:
    """Run the CLI until its answer says ``expected``: the invocation it selects may not be visible yet."""
    deadline = time.monotonic() + timeout
    rc, out = topo.cli.run(*args)
    while expected not in out and time.monotonic() < deadline:
        time.sleep(0.5)
        rc, out = topo.cli.run(*args)
    assert rc == 0 and expected in out, f"restate {' '.join(args)} exited {rc}:\n{out}"


def test_deployments_remove(topo: Topology) -> None:
    dep = _registered(topo)
    out = topo.cli("deployments", "remove", "--force", dep)
    assert f"Deployment {dep} removed successfully" in out, out
    assert dep not in topo.cli("deployments", "list")
