"""The health routes of the admin port: ``/health/live``, ``/health/ready`` and the legacy ``/health``.

Each answers 200 or 503 with ``{"status": "ok"|"failing", "checks": {name: "ok" | why}}``. ``/health``
stays a constant 200 ``{}`` for callers of old (it says only that the admin API is up).
"""

from __future__ import annotations

from aiohttp import web

from reprise.engine.health import Health


def add_health_routes(app: web.Application, health: Health | None, legacy: bool = True) -> None:
    if legacy:
        app.router.add_get("/health", _legacy)
    if health is None:
        return

    async def live(_r: web.Request) -> web.Response:
        ok, checks = health.live()
        return _answer(ok, checks)

    async def ready(_r: web.Request) -> web.Response:
        ok, checks = await health.ready()
        return _answer(ok, checks)

    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)


def health_app(health: Health) -> web.Application:
    """Only the health routes: what the admin port answers while the process is still starting.
    Without the legacy ``/health``: it keeps meaning what it always did, that the admin API is up."""
    app = web.Application()
    add_health_routes(app, health, legacy=False)
    return app


async def _legacy(_r: web.Request) -> web.Response:
    return web.json_response({})


def _answer(ok: bool, checks: dict[str, str]) -> web.Response:
    return web.json_response({"status": "ok" if ok else "failing", "checks": checks}, status=200 if ok else 503)
