"""``GET /version`` and the versioned paths (``/v2/...`` to ``/v4/...``) Restate's CLI calls.

Restate serves its admin API both at ``/<path>`` and ``/v<N>/<path>`` for each admin API version it
supports; its CLI reads ``/version`` and then uses the highest version both sides know.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from reprise import __version__
from reprise.engine.config import Config
from reprise.engine.introspection import RESTATE_VERSION  # the Restate release whose admin API this one follows

ADMIN_API_VERSIONS = (2, 3, 4)


def ingress_endpoint(cfg: Config) -> str:
    """The ingress's URL as clients are told it (``/version``, a service's OpenAPI document)."""
    host = cfg.ingress_host if cfg.ingress_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"http://{host}:{cfg.ingress_port}/"


def version_information(cfg: Config) -> dict[str, Any]:
    return {"version": RESTATE_VERSION, "min_admin_api_version": ADMIN_API_VERSIONS[0],
            "max_admin_api_version": ADMIN_API_VERSIONS[-1],
            "ingress_endpoint": ingress_endpoint(cfg), "features": {},
            "reprise_version": __version__}


def add_versioned_paths(router: web.UrlDispatcher) -> None:
    """Serve every route registered so far under ``/v2`` .. ``/v4`` too."""
    routes = [(r.method, r.resource.canonical, r.handler) for r in router.routes()
              if r.method != "HEAD" and r.resource is not None]
    for version in ADMIN_API_VERSIONS:
        for method, path, handler in routes:
            router.add_route(method, f"/v{version}{path}", handler)
