"""A local Apache Kafka broker from Maven Central's jars: no distribution tarball, no Docker.

``LocalKafka.start()`` resolves ``org.apache.kafka:kafka_2.13`` and its runtime dependencies with
the machine's Maven into a cache outside git, formats a KRaft log directory once, and starts one
combined broker+controller on 127.0.0.1 with a small heap. Ready means a client fetched metadata,
not merely that the port is open.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_START_ATTEMPTS = 3  # a start that fails on a port still held (BindException) is tried again


def _pinned_kafka_version(pom: Path) -> str:
    """The Kafka version the pom pins (its one source of truth)."""
    found = re.search(r"<kafka.version>([^<]+)<", pom.read_text())
    if found is None:
        raise RuntimeError(f"{pom} names no <kafka.version>")
    return found.group(1)


KAFKA_VERSION = _pinned_kafka_version(_HERE / "pom.xml")


class KafkaToolMissing(RuntimeError):
    """Java or Maven is not installed; the message says what to install."""


def _default_cache() -> Path:
    return Path(os.environ.get("REPRISE_CACHE", Path.home() / ".cache" / "reprise"))


def check_tools() -> None:
    """One clear line if Java 17+ or Maven is missing."""
    java = shutil.which("java")
    if java is None:
        raise KafkaToolMissing("Java 17+ is required to run the local Kafka broker: install a JDK "
                               "(Debian: apt-get install openjdk-17-jre-headless)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(m.group(1)) if m else 0
    if major == 1 and m and m.group(2):
        major = int(m.group(2))
    if major < 17:
        raise KafkaToolMissing(f"Java 17+ is required to run the local Kafka broker, found {major or 'unknown'}: "
                               "install a newer JDK (Debian: apt-get install openjdk-17-jre-headless)")
    if shutil.which("mvn") is None:
        raise KafkaToolMissing("Maven is required to fetch Kafka's jars from Maven Central: install it "
                               "(Debian: apt-get install maven)")


def wait_ready(bootstrap: str, timeout: float, client_settings: dict[str, str] | None = None) -> None:
    """Until a client (with ``client_settings``: SASL, TLS) can fetch metadata from ``bootstrap``."""
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, **(client_settings or {})})
    while True:
        try:
            admin.list_topics(timeout=2)
            return
        except Exception:  # noqa: BLE001 - not ready yet
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kafka at {bootstrap} not ready within {timeout:.0f}s") from None
            time.sleep(0.2)


@dataclass
class LocalKafka:
    home: Path = Path(".reprise")
    port: int = 9092
    controller_port: int = 9093
    heap: str = "384m"
    cache: Path = field(default_factory=_default_cache)
    extra_properties: str = ""  # server.properties lines appended to the template's (later lines win)
    client_settings: dict[str, str] = field(default_factory=dict)  # what a client needs to connect (SASL)

    @property
    def dir(self) -> Path:
        return self.home / "kafka"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def pid_file(self) -> Path:
        return self.dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "server.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def lib(self) -> Path:
        return self.cache / f"kafka-{KAFKA_VERSION}" / "lib"

    def resolve(self) -> Path:
        """Kafka's jars in the cache (fetched from Maven Central once)."""
        marker = self.lib / ".complete"
        if marker.exists():
            return self.lib
        check_tools()
        self.lib.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["mvn", "-q", "-B", "-f", str(_HERE / "pom.xml"), "dependency:copy-dependencies",
                               f"-DoutputDirectory={self.lib}"], capture_output=True, text=True)
        if proc.returncode != 0:
            out = proc.stdout[-2000:] + proc.stderr[-2000:]
            raise RuntimeError(f"Maven could not resolve Kafka {KAFKA_VERSION}:\n{out}")
        marker.write_text(KAFKA_VERSION)
        return self.lib

    def _java(self, *args: str) -> list[str]:
        return ["java", "-cp", f"{self.lib}/*", *args]

    def _write_config(self) -> Path:
        props = self.dir / "server.properties"
        text = (_HERE / "server.properties.template").read_text().format(
            port=self.port, controller_port=self.controller_port, data_dir=self.data_dir.resolve())
        props.write_text(text + self.extra_properties)
        return props

    def _format(self, props: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = subprocess.run(self._java("kafka.tools.StorageTool", "random-uuid"), capture_output=True,
                                    text=True, check=True).stdout.strip().splitlines()[-1]
        proc = subprocess.run(self._java("kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id,
                                         "-c", str(props)), capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"formatting the Kafka log directory failed:\n{proc.stdout}{proc.stderr}")

    def pid(self) -> int | None:
        """The broker's pid if it runs (a stale pid file counts as stopped)."""
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"kafka.Kafka" not in cmdline:
                return None
        except FileNotFoundError:
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self, timeout: float = 90.0) -> str:
        """Start the broker unless it runs; returns the bootstrap address once clients can use it."""
        if self.is_running():
            wait_ready(self.bootstrap, timeout, self.client_settings)
            return self.bootstrap
        if _port_open(self.port) or _port_open(self.controller_port):
            try:
                wait_ready(self.bootstrap, 3.0, self.client_settings)
            except TimeoutError:
                raise RuntimeError(f"127.0.0.1:{self.port} or :{self.controller_port} is in use by something that "
                                   "is not Kafka: free the ports or use --kafka HOST:PORT") from None
            raise ForeignKafka(f"a Kafka broker not started from {self.home} already answers on {self.bootstrap}")
        check_tools()
        self.resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        props = self._write_config()
        self._format(props)
        for attempt in range(1, _START_ATTEMPTS + 1):
            proc = self._spawn(props)
            if self._wait_started(proc, timeout):
                return self.bootstrap
            tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-20:])
            # A port the previous broker (or a client's ephemeral port) still held: free again a moment later
            if "BindException" not in tail or attempt == _START_ATTEMPTS:
                raise RuntimeError(f"Kafka exited with {proc.returncode} during start:\n{tail}")
            time.sleep(2.0)
        raise AssertionError("unreachable")

    def _spawn(self, props: Path) -> subprocess.Popen[bytes]:
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                ["java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseSerialGC",
                 "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={_HERE / 'log4j2.properties'}",
                 f"-Dreprise.kafka.log={self.log_file.resolve()}", "-cp", f"{self.lib}/*", "kafka.Kafka", str(props)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid_file.write_text(str(proc.pid))
        return proc

    def _wait_started(self, proc: subprocess.Popen[bytes], timeout: float) -> bool:
        """True once clients can use the broker; False if it exited first."""
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                return False
            try:
                wait_ready(self.bootstrap, 1.0, self.client_settings)
                return True
            except TimeoutError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"Kafka not ready within {timeout:.0f}s; see {self.log_file}") from None

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM (a clean shutdown), SIGKILL after ``timeout``. Returns whether it was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            _reap(pid)
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> str:
        pid = self.pid()
        return f"running pid {pid} on {self.bootstrap}" if pid else "stopped"

    def reset(self) -> None:
        """Stop, then delete the broker's data."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class ForeignKafka(RuntimeError):
    """Another broker (not ours) already serves the port; callers may use it as it is."""


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
