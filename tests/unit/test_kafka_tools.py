from __future__ import annotations

from pathlib import Path

import pytest

from reprise.deploy.kafka.local import KafkaToolMissing, LocalKafka, check_tools


def test_missing_java_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaToolMissing, match=r"^Java 17\+ is required.*install a JDK") as e:
        check_tools()
    assert "\n" not in str(e.value)


def test_missing_maven_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import shutil

    java = shutil.which("java")
    assert java, "this test needs the machine's Java"
    (tmp_path / "java").symlink_to(java)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaToolMissing, match=r"^Maven is required"):
        check_tools()


def test_stale_pid_file_counts_as_stopped(tmp_path: Path) -> None:
    kafka = LocalKafka(home=tmp_path)
    kafka.dir.mkdir(parents=True)
    kafka.pid_file.write_text("999999")
    assert kafka.status() == "stopped" and not kafka.is_running()


def test_a_port_held_by_something_else_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        kafka = LocalKafka(home=tmp_path, port=port, controller_port=port)
        with pytest.raises(RuntimeError, match="in use by something that is not Kafka"):
            kafka.start()
