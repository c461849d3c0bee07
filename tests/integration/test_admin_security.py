"""The admin API's trust boundary, end to end: token, JSON-only bodies, deployment URIs, takeover,
remote bodies kept out of answers, credential headers redacted (docs/security.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.harness import ADMIN_TOKEN, ROOT, Engine, Service, post
from tests.services.discover_refusal import SECRET_BODY

JSON = {"content-type": "application/json"}


def raw(url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
        method: str = "GET") -> tuple[int, dict]:
    """A request with exactly these headers (the harness would add the token)."""
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            out = resp.read()
            return resp.status, json.loads(out) if out.startswith((b"{", b"[")) else {}
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REPRISE_ADMIN_TOKEN")}
    return subprocess.run([sys.executable, "-m", "reprise", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("role", ["processor", "ingress"])
def test_cluster_roles_refuse_to_start_without_a_token(role: str, tmp_path: Path) -> None:
    out = cli(role, "--kafka", "127.0.0.1:1", "--namespace", "never", "--home", str(tmp_path), env={})
    assert out.returncode == 2, out.stderr
    assert "REPRISE_ADMIN_TOKEN" in out.stderr and "--admin-token-file" in out.stderr


def test_an_ingress_admin_api_needs_its_token(kafka_bootstrap: str, namespace: str, tmp_path: Path) -> None:
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "ingress", role="ingress")
    try:
        eng.start()
        for method, path, body in (("GET", "/services", None), ("GET", "/deployments", None),
                                   ("POST", "/deployments", b'{"uri": "http://127.0.0.1:1"}'),
                                   ("PATCH", "/invocations/inv_1/kill", None), ("GET", "/ui/../services", None),
                                   ("GET", "/health/../services", None), ("GET", "/metrics/../services", None)):
            status, out = raw(eng.admin + path, body, JSON if body else {}, method)
            assert status == 401 and "Bearer" in out["message"], (method, path, status)
            status, _ = raw(eng.admin + path, body, {**(JSON if body else {}), "authorization": "Bearer nope"},
                            method)
            assert status == 401
        for path in ("/health", "/metrics", "/ui"):
            assert raw(eng.admin + path)[0] == 200, path
        assert raw(eng.admin + "/services", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})[0] == 200

        port = ["--admin-port", str(eng.admin_port)]
        assert cli("services", *port, env={"REPRISE_ADMIN_TOKEN": ADMIN_TOKEN}).returncode == 0
        refused = cli("services", *port, env={})
        assert refused.returncode == 1 and "401" in refused.stderr
        token_file = tmp_path / "token"
        token_file.write_text(ADMIN_TOKEN + "\n")
        assert cli("services", *port, "--admin-token-file", str(token_file), env={}).returncode == 0
    finally:
        eng.kill()


def test_bodies_must_be_json_and_uris_plain_http(engine: Engine, service: Service) -> None:
    status, out = raw(engine.admin + "/deployments", json.dumps({"uri": service.uri}).encode(),
                      {"content-type": "text/plain"}, "POST")
    assert status == 415 and "application/json" in out["message"]
    for uri in ("ftp://127.0.0.1:1", "http://127.0.0.1:1/?x=1", "http://127.0.0.1:1/#f", "http://u:p@127.0.0.1:1",
                "embedded://tests.services.testapp:app"):
        status, out = raw(engine.admin + "/deployments", json.dumps({"uri": uri}).encode(), JSON, "POST")
        assert status == 400 and "bad deployment uri" in out["message"], (uri, out)


def test_a_new_deployment_of_a_service_is_its_next_revision(engine: Engine, effects: Path, tmp_path: Path) -> None:
    """As in Restate: a second deployment serving the same services needs no force; it serves each
    one's next revision, and the first deployment stays registered for invocations pinned to it."""
    first = {d["id"]: d["uri"] for d in engine.admin_json("/deployments")["deployments"]}
    (old_id,) = first
    other = Service(effects, tmp_path / "other.log", env={"REPRISE_EXAMPLE_OUTBOX": str(effects)})
    other.start()
    try:
        status, out = raw(engine.admin + "/deployments", json.dumps({"uri": other.uri}).encode(), JSON, "POST")
        assert status == 201, out
        steps = engine.admin_json("/services/Steps")
        assert (steps["deployment_id"], steps["revision"]) == (out["id"], 2) and out["id"] != old_id
        assert set(first) < {d["id"] for d in engine.admin_json("/deployments")["deployments"]}
    finally:
        other.kill()


def test_a_remote_refusal_is_not_echoed(engine: Engine, effects: Path, tmp_path: Path) -> None:
    bad = Service(effects, tmp_path / "bad.log", app="tests.services.discover_refusal:app")
    bad.start()
    try:
        status, out = raw(engine.admin + "/deployments", json.dumps({"uri": bad.uri}).encode(), JSON, "POST")
        assert status == 500 and "500" in out["message"], out  # Restate answers a failed discovery 500
        assert SECRET_BODY.decode() not in json.dumps(out) and "hunter2" not in json.dumps(out)
        assert "hunter2" in engine.output(), "the full body goes to the engine's log"
    finally:
        bad.kill()


def test_journals_shown_redact_credentials(engine: Engine) -> None:
    status, body = post(engine.ingress + "/Steps/three/send", b'"r"', {
        **JSON, "authorization": "Bearer client-secret", "cookie": "session=cookie-secret",
        "proxy-authorization": "Basic proxy-secret", "x-visible": "shown"})
    assert status == 202, body
    inv = json.loads(body)["invocationId"]
    deadline = time.monotonic() + 60
    described = None
    while time.monotonic() < deadline:
        status, described = raw(engine.admin + f"/invocations/{inv}")
        if status == 200 and described["journal"]:
            break
        time.sleep(0.2)
    assert described and described["journal"], described
    text = json.dumps(described)
    for secret in ("client-secret", "cookie-secret", "proxy-secret"):
        assert secret not in text
    headers = {h["key"].lower(): h["value"] for h in described["journal"][0]["headers"]}
    assert headers["authorization"] == headers["cookie"] == headers["proxy-authorization"] == "<redacted>"
    assert headers["x-visible"] == "shown"


def test_deployments_shown_redact_credential_headers(engine: Engine, effects: Path, tmp_path: Path) -> None:
    """GET /deployments and /deployments/{id} show additional_headers (Restate's field) without the
    credentials in them; the invoker still sends them (docs/security.md)."""
    other = Service(effects, tmp_path / "other.log", env={"REPRISE_EXAMPLE_OUTBOX": str(effects)})
    other.start()
    try:
        sent = {"Authorization": "Bearer dep-secret", "x-api-key": "key-secret", "x-billing-token": "tok-secret",
                "cookie": "c=cookie-secret", "x-visible": "shown"}
        body = {"uri": other.uri, "force": True, "additional_headers": sent}
        status, out = raw(engine.admin + "/deployments", json.dumps(body).encode(), JSON, "POST")
        assert status == 201, out
        listed = engine.admin_json("/deployments")
        one = engine.admin_json(f"/deployments/{out['id']}")
        for shown in (listed, one):
            text = json.dumps(shown)
            for secret in ("dep-secret", "key-secret", "tok-secret", "cookie-secret"):
                assert secret not in text, shown
        assert one["additional_headers"] == {"Authorization": "<redacted>", "x-api-key": "<redacted>",
                                             "x-billing-token": "<redacted>", "cookie": "<redacted>",
                                             "x-visible": "shown"}
        assert [d for d in listed["deployments"] if d["id"] == out["id"]][0]["additional_headers"] == \
            one["additional_headers"]
    finally:
        other.kill()
