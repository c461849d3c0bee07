"""The suite's engine and service fixtures leave nothing running when their start fails: an engine
that never answers, a registration refused, a service that never listens. A process left behind by a
failed setup keeps its ports, its RocksDB home and its broker connections for the rest of the session.

The processes here are stand-ins (a sleeping Python, a tiny HTTP server): what is tested is the
fixtures' and the harness's clean-up, with no broker.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import tests.conftest as conftest
from tests.harness import Engine, Service

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
# Answers every GET with 200 (the engine's health) and refuses every POST (a registration) with 500.
REFUSER = textwrap.dedent('''
    import http.server, sys, threading
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
        def do_POST(self):
            self.send_response(500); self.send_header("content-length", "0"); self.end_headers()
        def log_message(self, *a):
            pass
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", int(p)), H) for p in sys.argv[1:]]
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    servers[0].serve_forever()
''')


class StandInEngine(Engine):
    """An Engine whose process is ``command`` (given the ingress and admin ports), remembered for the test."""

    made: list[StandInEngine] = []
    command: list[str] = SLEEPER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.args = [*self.command, str(self.ingress_port), str(self.admin_port)]
        StandInEngine.made.append(self)

    def start(self, timeout: float = 60.0) -> None:
        super().start(1.0 if self.command is SLEEPER else timeout)  # a sleeper never answers: why wait long


class StandInService(Service):
    made: list[StandInService] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.args = SLEEPER  # never listens
        StandInService.made.append(self)

    def start(self, timeout: float = 30.0) -> None:
        super().start(1.0)


def running(proc: Engine | Service) -> bool:
    return proc.popen is not None and proc.popen.poll() is None


@pytest.fixture(autouse=True)
def _stand_ins(monkeypatch: pytest.MonkeyPatch) -> Any:
    StandInEngine.made, StandInService.made, StandInEngine.command = [], [], SLEEPER
    monkeypatch.setattr(conftest, "Engine", StandInEngine)
    monkeypatch.setattr(conftest, "Service", StandInService)
    yield
    for p in [*StandInEngine.made, *StandInService.made]:
        p.kill()  # whatever a failing check left


class Up:
    uri = "http://127.0.0.1:1"


def test_an_engine_that_never_answers_is_not_left_running(tmp_path: Path) -> None:
    setup = conftest.engine.__wrapped__("127.0.0.1:1", "tcleanup", tmp_path, Up())
    with pytest.raises(TimeoutError):
        next(setup)
    [eng] = StandInEngine.made
    assert eng.popen is not None and not running(eng)


def test_an_engine_whose_registration_fails_is_not_left_running(tmp_path: Path) -> None:
    StandInEngine.command = [sys.executable, "-c", REFUSER]
    setup = conftest.engine.__wrapped__("127.0.0.1:1", "tcleanup", tmp_path, Up())
    with pytest.raises(AssertionError, match="registration failed"):
        next(setup)
    [eng] = StandInEngine.made
    assert eng.popen is not None and not running(eng)


@pytest.mark.parametrize("fixture", ["service", "latch_service"])
def test_a_service_that_never_listens_is_not_left_running(tmp_path: Path, fixture: str) -> None:
    (tmp_path / "effects").mkdir()
    setup = getattr(conftest, fixture).__wrapped__(tmp_path, tmp_path / "effects")
    with pytest.raises(TimeoutError):
        next(setup)
    [svc] = StandInService.made
    assert svc.popen is not None and not running(svc)


def test_an_engine_that_started_is_yielded_and_killed_at_teardown(tmp_path: Path) -> None:
    """What the tests see is unchanged: a started engine is yielded, and killed at teardown."""
    StandInEngine.command = [sys.executable, "-c", REFUSER]
    setup = conftest.engine.__wrapped__("127.0.0.1:1", "tcleanup", tmp_path, Up())
    StandInEngine.register = lambda self, uri, use_http_11=False: {}  # type: ignore[method-assign]
    try:
        eng = next(setup)
        assert running(eng)
        with pytest.raises(StopIteration):
            next(setup)
        assert not running(eng)
    finally:
        del StandInEngine.register
