"""Real processes for end-to-end tests: the engine (``reprise dev``) and a restate-sdk service.

Both run as subprocesses so a test can SIGKILL them, exactly as a crash would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
# The cluster roles refuse to start without an admin token (docs/security.md): theirs is this one, and
# ``post``/``request`` send it to every admin port an Engine of those roles listens on.
ADMIN_TOKEN = "reprise-test-admin-token"
_TOKEN_PORTS: set[int] = set()


def _with_token(url: str, headers: dict[str, str] | None) -> dict[str, str]:
    headers = dict(headers or {})
    if urlsplit(url).port in _TOKEN_PORTS and not any(k.lower() == "authorization" for k in headers):
        headers["authorization"] = f"Bearer {ADMIN_TOKEN}"
    return headers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_pair(low: int = 20_000, high: int = 32_000) -> int:
    """A port whose next is free too, below the kernel's ephemeral range (32768 up): a broker binds
    both (listener, controller) and binds them again when restarted, and a port from the ephemeral
    range can be taken meanwhile by any outgoing connection's local end."""
    import random

    for _ in range(200):
        port = random.randrange(low, high)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no two free consecutive ports in {low}-{high}")


def wait_port(port: int, timeout: float = 30.0) -> None:
    """Until something listens on the local port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class Proc:
    """A subprocess whose output is kept in a log file for post-mortems."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.args, self.log_path, self.env = args, log, env
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.args, stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT,
                                      env={**os.environ, **(self.env or {})}, start_new_session=True)
        logf.close()

    def kill(self) -> None:
        """SIGKILL: what a crash looks like."""
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.returncode if self.popen else None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_listening(self, port: int, timeout: float = 30.0) -> None:
        """Until the process listens on ``port``; on timeout it is killed (nothing is left running when
        a start fails), and the error carries the end of its log."""
        try:
            wait_port(port, timeout)
        except TimeoutError:
            self.kill()
            raise TimeoutError(f"{self.args[0]} did not start:\n" + self.output()[-4000:]) from None


class Engine(Proc):
    """A Reprise process against the session's broker, with its own namespace, ports and RocksDB home.

    ``role`` is ``dev`` (everything in one process), ``processor`` or ``ingress``.
    """

    def __init__(self, bootstrap: str, namespace: str, home: Path, partitions: int = 4,
                 env: dict[str, str] | None = None, role: str = "dev") -> None:
        self.ingress_port, self.admin_port = free_port(), free_port()
        self.home, self.role = home, role
        args = [sys.executable, "-m", "reprise", role, "--kafka", bootstrap, "--namespace", namespace,
                "--home", str(home), "--admin-port", str(self.admin_port)]
        if role != "processor":
            args += ["--ingress-port", str(self.ingress_port)]
        token = {"REPRISE_ADMIN_TOKEN": ADMIN_TOKEN} if role != "dev" else {}
        if role != "dev":
            _TOKEN_PORTS.add(self.admin_port)
        super().__init__(args, home / f"{role}.log", {
            "REPRISE_RETRY_INITIAL_INTERVAL_MS": "100", "REPRISE_RETRY_MAX_INTERVAL_MS": "1000",
            "REPRISE_PARTITIONS": str(partitions), **token, **(env or {})})

    @property
    def ingress(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, timeout: float = 60.0) -> None:
        """Until it answers; if it does not in time, it is killed and the error carries its log's end."""
        super().start()
        try:
            wait_http(self.admin + "/health" if self.role == "processor" else self.ingress + "/restate/health",
                      timeout)
        except TimeoutError:
            self.kill()
            raise TimeoutError(f"reprise {self.role} did not start:\n" + self.output()[-4000:]) from None

    def admin_json(self, path: str, method: str = "GET") -> Any:
        status, body = post(self.admin + path, None, method=method)
        assert status == 200, f"{method} {path}: {status} {body!r}"
        return json.loads(body)

    def register(self, uri: str, use_http_11: bool = False) -> dict[str, Any]:
        status, body = post(self.admin + "/deployments", json.dumps({"uri": uri, "use_http_11": use_http_11}).encode(),
                            {"content-type": "application/json"})
        assert status in (200, 201), f"registration failed: {status} {body!r}"
        return json.loads(body)


class Service(Proc):
    """The test service app under hypercorn (h2c, Restate's default) or uvicorn (HTTP/1.1)."""

    def __init__(self, effects: Path, log: Path, http1: bool = False, app: str = "tests.services.testapp:app",
                 env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.http1 = http1
        if http1:
            args = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(self.port),
                    "--log-level", "warning"]
        else:
            args = [sys.executable, "-m", "hypercorn", app, "--bind", f"127.0.0.1:{self.port}"]
        super().__init__(args, log, {"REPRISE_TEST_EFFECTS": str(effects), **(env or {})})

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        super().start()
        self.wait_listening(self.port, timeout)


def post(url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 60.0, method: str = "POST") -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers=_with_token(url, headers), method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, OSError):
        return 0, b""  # the server went away (a test killed it)


def call_json(engine: Engine, path: str, value: Any = None, timeout: float = 60.0) -> tuple[int, Any]:
    body = json.dumps(value).encode() if value is not None else None
    status, raw = post(engine.ingress + path, body, {"content-type": "application/json"}, timeout)
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw


class Background:
    """Run a blocking call on a thread; ``result()`` waits for it."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self._out: list[Any] = []
        self._t = threading.Thread(target=lambda: self._out.append(fn(*args)), daemon=True)
        self._t.start()

    def done(self) -> bool:
        return bool(self._out)

    def result(self, timeout: float = 120.0) -> Any:
        self._t.join(timeout)
        if not self._out:
            raise TimeoutError("background call did not finish")
        return self._out[0]


def count(effects: Path, name: str) -> int:
    f = effects / name
    return len(f.read_text().splitlines()) if f.exists() else 0


def log_kinds(bootstrap: str, namespace: str, timeout: float = 10.0) -> list[str]:
    """The kinds of every record now on the namespace's log topic, read from the start."""
    from confluent_kafka import Consumer, TopicPartition

    from reprise.schemas import codec

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests", "enable.auto.commit": False})
    topic = f"{namespace}.log"
    parts = c.list_topics(topic, timeout=timeout).topics[topic].partitions
    kinds = []
    for p in parts:
        low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
        if high <= low:
            continue
        c.assign([TopicPartition(topic, p, low)])
        got = 0
        deadline = time.monotonic() + timeout
        while got < high - low and time.monotonic() < deadline:
            for m in c.consume(500, 0.5):
                if m.error() is None:
                    got += 1
                    kinds.append(codec.kind_of(m.headers())[0])
    c.close()
    return kinds


def request(url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
            method: str = "POST", timeout: float = 60.0) -> tuple[int, dict[str, str], bytes]:
    """Like ``post``, with the response headers (lower-cased names)."""
    req = urllib.request.Request(url, data=body, headers=_with_token(url, headers), method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


@contextlib.contextmanager
def engine_serving(kafka_bootstrap: str, namespace: str, home: Path, effects: Path,
                   app: str | None = None) -> Iterator[Engine]:
    """An engine under ``home`` with the test service (or ``app``, writing to ``effects``) registered;
    both killed after."""
    svc = Service(effects, home / "service.log", env={"REPRISE_EXAMPLE_OUTBOX": str(effects)},
                  **({"app": app} if app else {}))
    eng = Engine(kafka_bootstrap, namespace, home / "engine")
    try:
        svc.start()
        eng.start()
        eng.register(svc.uri)
        yield eng
    finally:
        eng.kill()
        svc.kill()


def drop_namespace(bootstrap: str, namespace: str) -> None:
    """Delete a namespace's topics (``<ns>.*``) once its engines are gone: a shared broker that keeps
    every test's topics ends a session with thousands of partitions."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [t for t in admin.list_topics(timeout=30).topics if t.startswith(namespace + ".")]
    for fut in (admin.delete_topics(topics, operation_timeout=30) if topics else {}).values():
        try:
            fut.result(30)
        except Exception:  # noqa: BLE001 - already gone, or the broker went away: nothing to clean
            pass
