"""The admin API's gate (ingress/admin_guard.py): bearer token, JSON-only bodies, deployment URIs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reprise.ingress.admin_guard import AdminTokenError, guard, required_token, uri_problem

TOKEN = "s3cret-token"


async def _ok(_r: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def _answers(token: str, calls: list[tuple[str, str, dict[str, str], bytes | None]]) -> list[int]:
    """Status of each (method, path, headers, body) against an app behind the guard."""
    async def run() -> list[int]:
        app = web.Application(middlewares=[guard(token)])
        for path in ("/health", "/health/live", "/health/ready", "/metrics", "/services", "/deployments", "/ui",
                     "/healthz"):
            app.router.add_get(path, _ok)
        app.router.add_post("/deployments", _ok)
        app.router.add_patch("/invocations/x/kill", _ok)
        async with TestClient(TestServer(app)) as client:
            out = []
            for method, path, headers, body in calls:
                resp = await client.request(method, path, headers=headers, data=body)
                out.append(resp.status)
            return out
    return asyncio.run(run())


BEARER = {"authorization": f"Bearer {TOKEN}"}
JSON = {"content-type": "application/json"}


def test_every_admin_path_needs_the_token() -> None:
    assert _answers(TOKEN, [
        ("GET", "/services", {}, None),
        ("GET", "/services", {"authorization": "Bearer wrong"}, None),
        ("GET", "/services", {"authorization": TOKEN}, None),  # no scheme
        ("GET", "/healthz", {}, None),  # only /health and what is under it is open
        ("POST", "/deployments", JSON, b'{"uri": "http://x"}'),
        ("PATCH", "/invocations/x/kill", {}, None),
        ("GET", "/services", BEARER, None),
        ("GET", "/services", {"authorization": f"bearer {TOKEN}"}, None),
        ("POST", "/deployments", {**BEARER, **JSON}, b'{"uri": "http://x"}'),
    ]) == [401, 401, 401, 401, 401, 401, 200, 200, 200]


def test_probes_metrics_and_the_page_stay_open() -> None:
    assert _answers(TOKEN, [(m, p, {}, None) for m, p in (
        ("GET", "/health"), ("GET", "/health/live"), ("GET", "/health/ready"), ("GET", "/metrics"),
        ("GET", "/ui"))]) == [200] * 5


def test_bodies_must_be_json() -> None:
    form = {"content-type": "text/plain"}
    assert _answers(TOKEN, [
        ("POST", "/deployments", {**BEARER, **form}, b'{"uri": "http://x"}'),
        ("POST", "/deployments", {**BEARER, "content-type": "application/x-www-form-urlencoded"}, b"uri=x"),
        ("PATCH", "/invocations/x/kill", {**BEARER, **form}, b"x"),
        ("PATCH", "/invocations/x/kill", BEARER, None),  # no body: nothing to judge
    ]) == [415, 415, 415, 200]


def test_without_a_token_nothing_is_asked_but_bodies_stay_json() -> None:
    assert _answers("", [
        ("GET", "/services", {}, None),
        ("POST", "/deployments", {"content-type": "text/plain"}, b'{"uri": "http://x"}'),
        ("POST", "/deployments", JSON, b'{"uri": "http://x"}'),
    ]) == [200, 415, 200]


def test_cluster_roles_refuse_to_start_without_a_token(tmp_path: Path) -> None:
    for role in ("processor", "ingress"):
        with pytest.raises(AdminTokenError, match="REPRISE_ADMIN_TOKEN"):
            required_token(role, "127.0.0.1", "", "")
    with pytest.raises(AdminTokenError, match="beyond loopback"):
        required_token("dev", "0.0.0.0", "", "")
    assert required_token("dev", "127.0.0.1", "", "") == ""
    assert required_token("dev", "::1", "", "") == ""
    assert required_token("processor", "0.0.0.0", " t ", "") == "t"
    f = tmp_path / "token"
    f.write_text("from-file\n")
    assert required_token("ingress", "0.0.0.0", "", str(f)) == "from-file"
    f.write_text("")
    with pytest.raises(AdminTokenError, match="empty"):
        required_token("ingress", "0.0.0.0", "", str(f))
    with pytest.raises(AdminTokenError, match="cannot read"):
        required_token("ingress", "0.0.0.0", "", str(tmp_path / "missing"))


@pytest.mark.parametrize("uri,problem", [
    ("http://127.0.0.1:9080", None),
    ("https://svc.example.com/prefix", None),
    ("ftp://svc", "scheme"),
    ("embedded://app", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("http://", "host"),
    ("http://user:pw@svc", "credentials"),
    ("http://svc/?x=1", "query"),
    ("http://svc/?", "query"),
    ("http://svc/#frag", "fragment"),
    ("http://svc:99999", "not a valid URI"),
])
def test_deployment_uris(uri: str, problem: Any) -> None:
    found = uri_problem(uri)
    assert (found is None) if problem is None else (found is not None and problem in found), found


def test_restates_versioned_health_path_is_open_and_the_rest_is_not() -> None:
    async def run() -> list[int]:
        app = web.Application(middlewares=[guard(TOKEN)])
        for path in ("/v4/health", "/v4/services", "/v4x/health"):
            app.router.add_get(path, _ok)
        async with TestClient(TestServer(app)) as client:
            return [(await client.get(p)).status for p in ("/v4/health", "/v4/services", "/v4x/health")]
    assert asyncio.run(run()) == [200, 401, 401]
