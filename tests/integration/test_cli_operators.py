"""The CLI against a running engine and the real broker: JSON output with the documented fields, exit
code 5 for what does not exist, 7 for a port in use, Kafka's flag names; the rest needs no broker
(tests/unit/test_cli_exit_codes.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from reprise.deploy import cli, cli_errors
from reprise.engine.ids import InvocationId
from tests.harness import ADMIN_TOKEN, ROOT, Engine, call_json

pytestmark = pytest.mark.kafka


def run(capsys: pytest.CaptureFixture[str], engine: Engine, *argv: str) -> tuple[int, str, str]:
    code = cli.main([*argv, "--admin-port", str(engine.admin_port)])
    out, err = capsys.readouterr()
    return code, out, err


def test_listing_and_describe_commands_print_json_with_their_fields(module_engine: Engine,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert call_json(module_engine, "/Counter/clijson/add", 2) == (200, 2)
    code, out, _ = run(capsys, module_engine, "services", "-o", "json")
    services = {s["name"]: s for s in json.loads(out)["services"]}
    assert code == 0 and services["Counter"]["ty"] == "VirtualObject"
    assert ("get", "Shared") in [(h["name"], h["ty"]) for h in services["Counter"]["handlers"]]
    code, out, _ = run(capsys, module_engine, "services", "Counter", "--output", "json")
    assert code == 0 and json.loads(out)["name"] == "Counter"
    code, out, _ = run(capsys, module_engine, "invocations", "ls", "-o", "json")
    listed = json.loads(out)["invocations"]
    assert code == 0 and listed and {"id", "target", "status", "attempts", "last_failure"} <= set(listed[0])
    inv = next(i["id"] for i in listed if i["target"] == "Counter/clijson/add")
    code, out, _ = run(capsys, module_engine, "invocations", "describe", inv, "-o", "json")
    described = json.loads(out)
    assert code == 0 and described["status"] == "COMPLETED" and described["journal"][0]["index"] == 0
    code, out, _ = run(capsys, module_engine, "state", "get", "Counter", "clijson", "-o", "json")
    assert code == 0 and json.loads(out) == {"service": "Counter", "key": "clijson", "state": {"value": "2"}}
    code, out, _ = run(capsys, module_engine, "subscriptions", "ls", "-o", "json")
    assert code == 0 and isinstance(json.loads(out)["subscriptions"], list)
    # the default is a table for people: a header row, then a row per item
    code, out, _ = run(capsys, module_engine, "services")
    assert code == 0 and out.splitlines()[0].split() == ["NAME", "TYPE", "HANDLERS"] and "get (shared)" in out
    code, out, _ = run(capsys, module_engine, "invocations", "describe", inv)
    assert code == 0 and "id:" in out and "COMPLETED" in out and "journal[0]:" in out


def test_what_does_not_exist_exits_5(module_engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    unknown = str(InvocationId(12345, 67890))
    for argv in (["invocations", "describe", unknown], ["services", "NoSuchService"],
                 ["state", "get", "NoSuchObject", "k"], ["invocations", "cancel", unknown]):
        code, out, err = run(capsys, module_engine, *argv)
        assert code == cli_errors.NOT_FOUND, (argv, code, err)
        assert len(err.splitlines()) == 1 and "404" in err and out == "", (argv, err)


def test_a_port_in_use_exits_7_with_one_line(kafka_bootstrap: str, namespace: str, tmp_path: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "reprise", "processor", "--bootstrap-server", kafka_bootstrap,
                              "--namespace", namespace, "--home", str(tmp_path), "--admin-port", str(port)],
                             cwd=ROOT, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "REPRISE_ADMIN_TOKEN": ADMIN_TOKEN})
    assert out.returncode == cli_errors.PORT_IN_USE, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("reprise: ")]
    assert errors and str(port) in errors[-1] and "Traceback" not in out.stderr, out.stderr[-3000:]
