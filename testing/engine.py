"""An engine for a test: ``reprise dev`` in a subprocess with the user's restate-sdk app embedded.

The app runs inside the engine as ``REPRISE_EMBEDDED_APP`` runs it (no server, no registration: it is
discovered at start), against a broker the test names, under a namespace and a state directory of
its own. A subprocess rather than threads of the test's process so that a crash is a real one (the
process is SIGKILLed, what RocksDB held only in memory is lost) and a restart is a real restart.

Beyond calls, what Restate's tooling does not offer a test (deploy/test_controls.py):

* ``crash_after(n)``: the engine SIGKILLs itself once ``n`` more journal entries are committed;
  ``restart()`` then resumes every invocation from its journal.
* ``advance(delta)``: durable timers (sleeps, delayed sends, retry backoffs) run on a clock moved
  ahead by ``delta``; what comes due fires now. The skew is kept across restarts.
* ``journal(id)``: an invocation's journal, decoded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from reprise.testing.client import Client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EngineCrashed(RuntimeError):
    """The engine process ended when it should be running; the message has the end of its log."""


class EmbeddedEngine:
    """``reprise dev`` running ``app`` (``module:attribute``, importable from ``cwd``) against ``bootstrap``."""

    def __init__(self, app: str, bootstrap: str, home: Path, *, namespace: str | None = None, partitions: int = 2,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.app, self.bootstrap, self.home = app, bootstrap, Path(home)
        self.namespace = namespace or "t" + uuid.uuid4().hex[:10]
        self.partitions, self.env, self.cwd = partitions, dict(env or {}), cwd or Path.cwd()
        self.ingress_port, self.admin_port, self.control_port = _free_port(), _free_port(), _free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._skew_ms = 0
        self.client = Client(self.ingress, self.admin)

    @property
    def ingress(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def log_path(self) -> Path:
        return self.home / "engine.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout_s: float = 90.0) -> None:
        """Start the engine and wait until its ingress answers (the app is registered by then)."""
        self.home.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "reprise", "dev", "--kafka", self.bootstrap, "--namespace", self.namespace,
                "--home", str(self.home / "state"), "--partitions", str(self.partitions),
                "--ingress-port", str(self.ingress_port), "--admin-port", str(self.admin_port)]
        env = {**os.environ, "REPRISE_EMBEDDED_APP": self.app, "REPRISE_TEST_CONTROL_PORT": str(self.control_port),
               "REPRISE_RETRY_INITIAL_INTERVAL_MS": "100", "REPRISE_RETRY_MAX_INTERVAL_MS": "1000", **self.env}
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd, env=env,
                                          start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EngineCrashed(f"reprise dev exited with {self._proc.returncode}:\n{self.log()[-4000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.ingress + "/restate/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"reprise dev did not start within {timeout_s}s:\n{self.log()[-4000:]}")
        if self._skew_ms:
            self._control("/timers/advance", {"ms": self._skew_ms})

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the engine: a crash at an arbitrary point."""
        if self.running():
            assert self._proc is not None
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(30)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the engine cleanly (SIGTERM), or kill it if it does not stop in time."""
        if self.running():
            assert self._proc is not None
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self, timeout_s: float = 90.0) -> None:
        """Start again after a crash (or stop it first): invocations resume from their journals."""
        self.stop()
        self.start(timeout_s)

    def crash_after(self, entries: int) -> None:
        """Arm the engine to SIGKILL itself once ``entries`` more journal entries are committed (an
        invocation's input counts as its first entry); ``wait_crashed()`` then waits for it."""
        self._control("/crash-after", {"entries": entries})

    def wait_crashed(self, timeout_s: float = 60.0) -> None:
        """Until the armed crash happened (TimeoutError if it did not)."""
        assert self._proc is not None
        try:
            self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"the engine did not crash within {timeout_s}s") from None

    def advance(self, delta: timedelta | float) -> None:
        """Move durable timers' clock ahead by ``delta`` (a timedelta, or seconds): sleeps, delayed
        sends and retry backoffs due within it fire now. It never moves back."""
        ms = int((delta.total_seconds() if isinstance(delta, timedelta) else delta) * 1000)
        self._control("/timers/advance", {"ms": ms})
        self._skew_ms += ms

    def timer_skew(self) -> timedelta:
        """How far ``advance`` has moved the engine's timer clock ahead, as the engine reports it."""
        resp = httpx.get(f"http://127.0.0.1:{self.control_port}/timers", timeout=30)
        resp.raise_for_status()
        return timedelta(milliseconds=resp.json()["skew_ms"])

    def invocation(self, invocation_id: str) -> dict[str, Any]:
        return self.client.invocation(invocation_id)

    def journal(self, invocation_id: str) -> list[dict[str, Any]]:
        """The invocation's journal entries, decoded: ``{"index", "type", ...fields}`` each, e.g.
        ``{"index": 1, "type": "RUN_COMMAND", "name": "pay", "result_completion_id": 1}``."""
        return list(self.client.invocation(invocation_id)["journal"])

    def wait_for_status(self, invocation_id: str, status: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """Until the invocation has ``status`` (e.g. ``SUSPENDED``, ``SCHEDULED``, ``COMPLETED``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(Exception):
                inv = self.invocation(invocation_id)
                if inv["status"] == status:
                    return inv
            if time.monotonic() > deadline:
                raise TimeoutError(f"{invocation_id} not {status} within {timeout_s}s")
            time.sleep(0.1)

    def _control(self, path: str, body: dict[str, Any]) -> None:
        resp = httpx.post(f"http://127.0.0.1:{self.control_port}{path}", json=body, timeout=30)
        resp.raise_for_status()

    def close(self, delete_topics: bool = True) -> None:
        """Kill the engine and delete the namespace's topics (a shared broker keeps no test's topics)."""
        self.kill()
        self.client.close()
        if delete_topics:
            from confluent_kafka.admin import AdminClient

            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            topics = [t for t in admin.list_topics(timeout=30).topics if t.startswith(self.namespace + ".")]
            for fut in (admin.delete_topics(topics, operation_timeout=30) if topics else {}).values():
                with contextlib.suppress(Exception):
                    fut.result(30)

    def __enter__(self) -> EmbeddedEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
