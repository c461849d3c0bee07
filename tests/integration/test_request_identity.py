"""Request identity v1 against the official SDK's verification: a restate-sdk service configured with
``identity_keys=[<the engine's public key>]`` answers the engine's signed requests and refuses an
engine that does not sign them, which says so (docs/security.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import ROOT, Engine, Proc, Service, call_json, free_port, post


def keygen(path: Path) -> str:
    made = subprocess.run([sys.executable, "-m", "reprise", "identity", "keygen", "--out", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    shown = subprocess.run([sys.executable, "-m", "reprise", "identity", "public-key", "--key", str(path)],
                           cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert made.stdout.strip() == shown.stdout.strip()
    assert path.stat().st_mode & 0o077 == 0, "the private key is readable by its owner only"
    return made.stdout.strip()


def last_failure(engine: Engine, inv: str, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    status, body = 0, b""
    while time.monotonic() < deadline:
        status, body = post(engine.admin + f"/invocations/{inv}", None, method="GET")
        if status == 200 and json.loads(body)["last_failure"]:
            return json.loads(body)["last_failure"]
        time.sleep(0.3)
    raise AssertionError(f"{inv} recorded no failure within {timeout}s (last answer {status} {body[:500]!r}):\n"
                         + engine.output()[-3000:])


@pytest.mark.parametrize("http1", [False, True], ids=["h2c", "http1"])
def test_signed_calls_pass_the_sdks_check_and_unsigned_ones_are_refused(
        kafka_bootstrap: str, namespace: str, tmp_path: Path, effects: Path, http1: bool) -> None:
    key = tmp_path / "identity.pem"
    public = keygen(key)
    assert public.startswith("publickeyv1_")
    svc = Service(effects, tmp_path / "signed.log", http1=http1, app="tests.services.identity_app:app",
                  env={"REPRISE_TEST_IDENTITY_KEY": public})
    svc.start()
    signed = Engine(kafka_bootstrap, namespace, tmp_path / "engine",
                    env={"REPRISE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE": str(key)})
    try:
        signed.start()
        signed.register(svc.uri, use_http_11=http1)  # discovery is signed too
        assert call_json(signed, "/Signed/hello", "Ada") == (200, "hello Ada")
        assert call_json(signed, "/Signed/hello", "Bo") == (200, "hello Bo")
        signed.stop()

        # The same engine restarted without its key: the service answers 401 to every attempt.
        unsigned = Engine(kafka_bootstrap, namespace, tmp_path / "engine")
        try:
            unsigned.start()
            status, body = post(unsigned.ingress + "/Signed/hello/send", b'"Cy"', {"content-type": "application/json"})
            assert status == 202, body
            failure = last_failure(unsigned, json.loads(body)["invocationId"])
            assert failure["code"] == 401 and "REPRISE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE" in failure["message"]
            status, body = post(unsigned.admin + "/deployments", json.dumps(
                {"uri": svc.uri, "use_http_11": http1, "force": True}).encode(), {"content-type": "application/json"})
            message = json.loads(body)["message"]
            assert status == 500 and "401" in message and "request identity" in message, message
        finally:
            unsigned.kill()
    finally:
        signed.kill()
        svc.kill()


def test_an_unreadable_key_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a key")
    out = subprocess.run([sys.executable, "-m", "reprise", "dev", "--kafka", "127.0.0.1:1", "--home",
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "REPRISE_NATIVE": "0",
                              "REPRISE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE": str(tmp_path / "bad.pem")})
    assert out.returncode == 2 and "bad.pem" in out.stderr, out.stderr


GO_SERVICE = ROOT / "tests" / "services" / "go" / "identity"


def build_go_service(out: Path) -> Path:
    """The Go SDK service, built here (the module cache or the Go proxy provides the SDK)."""
    if shutil.which("go") is None:
        pytest.skip("the Go SDK test needs the go toolchain on PATH")
    binary = out / "signed-go"
    built = subprocess.run(["go", "build", "-o", str(binary), "."], cwd=GO_SERVICE, capture_output=True,
                           text=True, timeout=600)
    if built.returncode != 0 and any(w in built.stderr for w in ("dial tcp", "proxy.golang.org", "no such host")):
        pytest.skip(f"the Go SDK could not be downloaded: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr
    return binary


def test_the_go_sdks_with_identity_v1_accepts_only_signed_requests(
        kafka_bootstrap: str, namespace: str, tmp_path: Path) -> None:
    binary = build_go_service(tmp_path)
    key = tmp_path / "identity.pem"
    public = keygen(key)
    port = free_port()
    svc = Proc([str(binary)], tmp_path / "go.log", {"BIND": f"127.0.0.1:{port}", "REPRISE_TEST_IDENTITY_KEY": public})
    svc.start()
    svc.wait_listening(port)
    signed = Engine(kafka_bootstrap, namespace, tmp_path / "signed",
                    env={"REPRISE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE": str(key)})
    unsigned = Engine(kafka_bootstrap, namespace + "u", tmp_path / "unsigned")
    try:
        signed.start()
        signed.register(f"http://127.0.0.1:{port}")
        assert call_json(signed, "/SignedGo/Hello", "Ada") == (200, "hello Ada")
        unsigned.start()
        status, body = post(unsigned.admin + "/deployments", json.dumps({"uri": f"http://127.0.0.1:{port}"}).encode(),
                            {"content-type": "application/json"})
        message = json.loads(body)["message"]
        assert status == 500 and "401" in message and "request identity" in message, message
    finally:
        unsigned.kill()
        signed.kill()
        svc.kill()
