"""Clients attached to one running invocation: bounded (429 with Retry-After), their places freed
when they disconnect, and the invocation's row holding one waiter per ingress however many came."""

from __future__ import annotations

import json
import socket
import urllib.parse
from pathlib import Path

import pytest

from tests.harness import Background, Engine, Service, count, post
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka
JSON = {"content-type": "application/json"}


def attach_and_leave(engine: Engine, inv: str) -> None:
    """A client that asks to attach, sees its request taken up, and goes away."""
    port = urllib.parse.urlparse(engine.ingress).port
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"GET /restate/invocation/{inv}/attach HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        s.settimeout(0.5)
        try:
            assert s.recv(1) == b"", "an attach to a running invocation answered at once"
        except TimeoutError:
            pass  # waiting, as it should: leave


def attach_waiters(engine: Engine) -> float:
    status, body = post(engine.admin + "/metrics", None, {}, 30.0, "GET")
    assert status == 200
    return next(float(line.split()[1]) for line in body.decode().splitlines()
                if line.startswith("reprise_attach_waiters "))


def attached_clients(engine: Engine, inv: str) -> int:
    return engine.admin_json(f"/invocations/{inv}")["attached_clients"]


def test_attach_waiters_are_bounded_freed_on_disconnect_and_shared(
        kafka_bootstrap: str, namespace: str, tmp_path: Path, service: Service) -> None:
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "eng", env={"REPRISE_MAX_ATTACH_WAITERS_PER_INVOCATION": "2"})
    eng.start()
    try:
        eng.register(service.uri)
        effects = Path(service.env["REPRISE_TEST_EFFECTS"])
        status, body = post(eng.ingress + "/Waiter/awake/send", b'"aw"', JSON)
        assert status == 202, body
        inv = json.loads(body)["invocationId"]
        wait_until(lambda: count(effects, "aw.awakeable") == 1, 60, "the invocation to wait on its awakeable")

        for _ in range(10):  # clients that come and go leave nothing behind, here or in the row
            attach_and_leave(eng, inv)
        wait_until(lambda: attach_waiters(eng) == 0, 60, "the clients that left to be gone")
        url = f"{eng.ingress}/restate/invocation/{inv}/attach"
        first, second = Background(post, url, None, {}, 120.0, "GET"), Background(post, url, None, {}, 120.0, "GET")
        wait_until(lambda: attach_waiters(eng) == 2, 60, "two clients attached")
        refused = urlopen_error(url)
        assert refused[0] == 429 and refused[1] == "1" and refused[2]["code"] == 429
        # an output request is answered by the partition after every Attach produced before it (one
        # producer, one partition: in order), so the row now shows what they all left behind
        status, body = post(f"{eng.ingress}/restate/invocation/{inv}/output", None, {}, 60.0, "GET")
        assert status == 470, body
        assert attached_clients(eng, inv) == 1
        assert not first.done() and not second.done()

        awakeable = (effects / "aw.awakeable").read_text().strip()
        assert post(f"{eng.ingress}/restate/awakeables/{awakeable}/resolve", b'"late"', JSON)[0] == 202
        for waiting in (first, second):
            status, out = waiting.result()
            assert (status, json.loads(out)) == (200, "woken with late")
    finally:
        eng.kill()


def urlopen_error(url: str) -> tuple[int, str | None, dict]:  # type: ignore[type-arg]
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=30)
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("retry-after"), json.loads(e.read())
    raise AssertionError("the attach was not refused")
