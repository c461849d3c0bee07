"""The CLI ends a failure with one line on stderr and the exit code docs/cli.md documents, and takes
Kafka's own tools' flag names; these need no broker (the ones that do: tests/integration/test_cli_operators.py)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException

from reprise.deploy import cli, cli_completion, cli_errors
from reprise.engine.kafka_properties import KafkaConfigError
from reprise.partitions.state.rocks_store import StoreLocked
from tests.harness import ROOT, free_port


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("reprise: ") and "Traceback" not in err, err
    return lines[0]


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "invocations", "describe")
    assert code == cli_errors.USAGE and "invocation id is required" in _one_line(err)
    with pytest.raises(SystemExit) as exited:  # argparse's own usage errors
        cli.main(["invocations", "frobnicate"])
    assert exited.value.code == cli_errors.USAGE


def test_unreachable_kafka_exits_3_with_one_line(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPRISE_ADMIN_TOKEN", "a-token")  # which the cluster roles need before anything else
    dead = f"127.0.0.1:{free_port()}"
    for argv in (["topics", "create", "--bootstrap-server", dead], ["partitions", "snapshots", "--kafka", dead],
                 ["dev", "--kafka", dead]):
        code, out, err = run(capsys, *argv)
        assert code == cli_errors.KAFKA_UNREACHABLE, (argv, err)
        assert dead in _one_line(err) and out == ""


def test_unreachable_admin_api_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["services"], ["invocations", "ls", "-o", "json"], ["state", "get", "Counter", "k"]):
        code, out, err = run(capsys, *argv, "--admin-port", str(free_port()))
        assert code == cli_errors.ADMIN_UNREACHABLE and "unreachable" in _one_line(err) and out == "", argv


def test_a_command_config_file_is_the_kafka_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    props = tmp_path / "client.properties"
    props.write_text("acks=1\n")  # pinned by Reprise: refused, which shows the file was read
    code, _, err = run(capsys, "topics", "create", "--bootstrap-server", "127.0.0.1:1", "--command-config", str(props))
    assert code == cli_errors.USAGE and str(props) in _one_line(err) and "acks" in err


def test_every_command_that_talks_to_kafka_takes_kafkas_flag_names() -> None:
    for name, (_, flags) in cli_completion.commands(cli.parser()).items():
        if "--kafka" in flags:
            assert {"--bootstrap-server", "--command-config", "--kafka-config"} <= set(flags), name
    args = cli.parser().parse_args(["processor", "--bootstrap-server", "b:9", "--command-config", "c.properties"])
    assert (args.kafka, args.kafka_config) == ("b:9", "c.properties")


def test_exceptions_map_to_their_exit_codes() -> None:
    def code(e: BaseException) -> int | None:
        failure = cli_errors.for_exception(e)
        return None if failure is None else failure.code

    assert code(KafkaException(KafkaError(KafkaError._TRANSPORT, "down"))) == cli_errors.KAFKA_UNREACHABLE
    assert code(KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))) == cli_errors.FAILED
    assert code(StoreLocked("held")) == cli_errors.STORE_LOCKED
    assert code(KafkaConfigError("bad")) == cli_errors.USAGE
    assert code(OSError(errno.EADDRINUSE, "address already in use")) == cli_errors.PORT_IN_USE
    assert code(ValueError("a bug")) is None  # left to its traceback
    assert [cli_errors.for_http_status(s) for s in (0, 200, 404, 409, 500)] == [4, 0, 5, 1, 1]


def test_the_exit_codes_are_documented() -> None:
    doc = (ROOT / "docs" / "cli.md").read_text()
    for value, meaning in cli_errors.DOCUMENTED.items():
        assert f"| {value} | {meaning}" in doc, (value, meaning)
