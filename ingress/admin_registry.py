"""The admin API's deployments and services, as Restate 1.7 serves them (docs/admin-api.md).

Registering a deployment discovers it and writes its record (manifest, and each service's revision)
to the deployments topic; every process's registry follows the topic. A service's newest revision
takes new invocations; an invocation stays on the deployment its first attempt ran on. ``PATCH
/services/{s}`` writes the changed options into the manifest of the deployment that serves the
service's newest revision, so whatever honours a manifest option honours the PATCH.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from reprise.engine.config import Config
from reprise.engine.discovery import DiscoveryError, discover
from reprise.engine.durations import parse_ms
from reprise.engine.identity import RequestSigner
from reprise.engine.registry import Deployment, Registry
from reprise.ingress.admin_guard import uri_problem
from reprise.ingress.admin_schema import (
    DURATION_FIELDS,
    deployment_detail,
    deployment_summary,
    handler_metadata,
    registered,
    service_metadata,
)
from reprise.ingress.admin_version import ingress_endpoint
from reprise.ingress.errors import IngressError
from reprise.ingress.request_io import in_thread, json_object
from reprise.ingress.service_openapi import service_openapi

log = logging.getLogger(__name__)
# deployment id -> invocations not completed that are pinned to it; None: this process cannot tell
PinnedCounter = Callable[[], "dict[str, int] | None"]


class RegistryRoutes:
    def __init__(self, cfg: Config, registry: Registry, signer: RequestSigner | None,
                 pinned: PinnedCounter) -> None:
        self.cfg, self.registry, self.signer, self.pinned = cfg, registry, signer, pinned

    def add_to(self, r: web.UrlDispatcher) -> None:
        r.add_post("/deployments", self.register)
        r.add_get("/deployments", self.list_deployments)
        r.add_get("/deployments/{id}", self.get_deployment)
        r.add_patch("/deployments/{id}", self.update_deployment)
        r.add_delete("/deployments/{id}", self.delete_deployment)
        r.add_get("/services", self.list_services)
        r.add_get("/services/{name}", self.get_service)
        r.add_patch("/services/{name}", self.modify_service)
        r.add_get("/services/{name}/handlers", self.list_handlers)
        r.add_get("/services/{name}/handlers/{handler}", self.get_handler)
        r.add_get("/services/{name}/openapi", self.get_openapi)

    # -- deployments

    async def register(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        if "arn" in body and "uri" not in body:
            raise IngressError(400, "Lambda deployments are not supported by Reprise: register an http(s) uri")
        if not isinstance(body.get("uri"), str):
            raise IngressError(400, "expected a JSON object with a string 'uri'")
        if body.get("auth") is not None:
            raise IngressError(400, "deployment auth (Google ID tokens) is not supported by Reprise: "
                                    "use additional_headers")
        uri = body["uri"].rstrip("/")
        problem = uri_problem(uri)
        if problem is not None:
            raise IngressError(400, f"bad deployment uri {uri!r}: {problem}")
        use_http_11 = bool(body.get("use_http_11") or False)
        force, dry_run = body.get("force") is True, body.get("dry_run") is True
        breaking = force or body.get("breaking") is True
        headers = _headers(body.get("additional_headers"))
        manifest = await self._discover(uri, use_http_11, headers)
        dep_id = self.registry.id_for_uri(uri)
        existing = self.registry.deployment(dep_id)
        location = {"location": f"deployments/{dep_id}"}
        if existing is not None and not force:  # Restate: the deployment already exists, nothing changes
            if manifest["services"] != existing.manifest.get("services"):  # (a PATCH also differs)
                log.warning("deployment %s at %s now serves a different manifest; it stays registered as it was "
                            "(register it with force to replace it)", existing.id, uri)
            return web.json_response(registered(existing, self.cfg), status=200, headers=location)
        if not breaking:
            self._check_compatible(manifest)
        if isinstance(body.get("metadata"), dict) and body["metadata"]:
            manifest["_metadata"] = {str(k): str(v) for k, v in body["metadata"].items()}
        dep = self._with_revisions(Deployment.new(uri, use_http_11, headers, manifest, dep_id))
        if not dry_run:
            await in_thread(self.registry.publish, dep)
        return web.json_response(registered(dep, self.cfg), status=200 if existing is not None else 201,
                                 headers=location)

    async def _discover(self, uri: str, use_http_11: bool, headers: dict[str, str]) -> dict[str, Any]:
        try:
            return await discover(uri, use_http_11, headers, signer=self.signer)
        except DiscoveryError as e:
            # Restate: 500, with the failure's code (META0003 unreachable, META0012 protocol versions)
            raise IngressError(500, f"discovery failed: {e}", restate_code=e.restate_code) from None

    def _check_compatible(self, manifest: dict[str, Any]) -> None:
        """Restate refuses, without ``breaking`` or ``force``, a new revision that changes a service's type."""
        for s in manifest["services"]:
            current = self.registry.service(s["name"])
            if current is not None and current.ty != s.get("ty", "SERVICE"):
                raise IngressError(409, f"the new revision of service '{s['name']}' changes its type from "
                                        f"{current.ty} to {s.get('ty')}: pass \"breaking\": true (or force) to allow "
                                        "it")

    def _with_revisions(self, dep: Deployment) -> Deployment:
        """``dep`` with each service's revision: one above the newest registered anywhere."""
        revisions = {}
        for s in dep.manifest["services"]:
            newest = max((d.revision_of(s["name"]) for d in self.registry.deployments()
                          if any(x.name == s["name"] for x in d.services)), default=0)
            revisions[s["name"]] = newest + 1
        manifest = {**dep.manifest, "_revisions": revisions}
        return Deployment.from_record(_record(dep, manifest))

    async def list_deployments(self, _r: web.Request) -> web.Response:
        return web.json_response({"deployments": [deployment_summary(d) for d in self.registry.deployments()]})

    def _deployment(self, request: web.Request) -> Deployment:
        dep_id = request.match_info["id"]
        dep = self.registry.deployment(dep_id)
        if dep is None:
            raise IngressError(404, f"The requested deployment '{dep_id}' does not exist")
        return dep

    async def get_deployment(self, request: web.Request) -> web.Response:
        dep = self._deployment(request)
        out = deployment_detail(dep, self.cfg)
        counts = await in_thread(self.pinned)
        if counts is not None:  # Reprise's addition: how many invocations still run on this deployment
            out["active_invocations"] = counts.get(dep.id, 0)
        return web.json_response(out)

    async def update_deployment(self, request: web.Request) -> web.Response:
        """Restate's update: a new address, protocol or headers for the same deployment id; with
        ``overwrite`` the services are discovered again (their schemas may change)."""
        dep = self._deployment(request)
        body = await json_object(request)
        uri = (body.get("uri") or dep.uri).rstrip("/")
        problem = uri_problem(uri)
        if problem is not None:
            raise IngressError(400, f"bad deployment uri {uri!r}: {problem}")
        use_http_11 = dep.use_http_11 if body.get("use_http_11") is None else bool(body["use_http_11"])
        headers = dep.additional_headers if body.get("additional_headers") is None else \
            _headers(body["additional_headers"])
        manifest = await self._discover(uri, use_http_11, headers)
        if body.get("overwrite") is not True:
            if {s["name"] for s in manifest["services"]} != {s.name for s in dep.services}:
                raise IngressError(400, "the deployment at the new address serves other services: "
                                        "pass \"overwrite\": true to replace them")
            manifest = {**dep.manifest, "_sdk": manifest.get("_sdk", dep.manifest.get("_sdk"))}
        else:
            manifest["_revisions"] = dep.manifest.get("_revisions", {})
        updated = Deployment.from_record({**_record(dep, manifest), "uri": uri, "use_http_11": use_http_11,
                                          "additional_headers": headers})
        if body.get("dry_run") is not True:
            await in_thread(self.registry.publish, updated)
        return web.json_response(deployment_detail(updated, self.cfg))

    async def delete_deployment(self, request: web.Request) -> web.Response:
        """202 once removed. Without ``force`` (Restate answers 501 there) Reprise removes a deployment
        only when no invocation still runs on it."""
        dep = self._deployment(request)
        force = request.query.get("force", "false").lower() == "true"
        if not force:
            counts = await in_thread(self.pinned)
            if counts is None:
                raise IngressError(409, f"deployment {dep.id}: this process holds no partitions and cannot tell "
                                        "whether invocations still run on it; pass force=true to remove it anyway")
            if counts.get(dep.id, 0):
                raise IngressError(409, f"deployment {dep.id} still has {counts[dep.id]} invocation(s) running "
                                        "on it: wait until they finish, or pass force=true (they would then "
                                        "continue on the newest deployment of their service)")
        await in_thread(self.registry.remove, dep.id)
        return web.Response(status=202)

    # -- services

    def _service(self, request: web.Request) -> Any:
        svc = self.registry.service(request.match_info["name"])
        if svc is None:
            raise IngressError(404, f"The requested service '{request.match_info['name']}' does not exist")
        return svc

    async def list_services(self, _r: web.Request) -> web.Response:
        return web.json_response({"services": [service_metadata(s, self.cfg) for s in self.registry.services()]})

    async def get_service(self, request: web.Request) -> web.Response:
        return web.json_response(service_metadata(self._service(request), self.cfg))

    async def list_handlers(self, request: web.Request) -> web.Response:
        svc = self._service(request)
        return web.json_response({"handlers": [handler_metadata(svc, h) for h in svc.handlers.values()]})

    async def get_handler(self, request: web.Request) -> web.Response:
        svc = self._service(request)
        h = svc.handlers.get(request.match_info["handler"])
        if h is None:
            raise IngressError(404, f"The requested handler '{request.match_info['handler']}' on service "
                                    f"'{svc.name}' does not exist")
        return web.json_response(handler_metadata(svc, h))

    async def get_openapi(self, request: web.Request) -> web.Response:
        """The service's ingress endpoints as an OpenAPI 3.1 document (ingress/service_openapi.py)."""
        doc = service_openapi(self._service(request), ingress_endpoint(self.cfg))
        return web.json_response(doc, dumps=_sorted_json)

    async def modify_service(self, request: web.Request) -> web.Response:
        svc = self._service(request)
        body = await json_object(request)
        changes: dict[str, Any] = {}
        if body.get("public") is not None:
            if not isinstance(body["public"], bool):
                raise IngressError(422, "public: expected a boolean")
            changes["ingressPrivate"] = not body["public"]
        for key, name in DURATION_FIELDS.items():
            if body.get(name) is None:
                continue
            if name == "workflow_completion_retention" and svc.ty != "WORKFLOW":
                raise IngressError(400, f"modifying retention time for service type "
                                        f"{_restate_type(svc.ty)} is unsupported")
            try:
                changes[key] = parse_ms(str(body[name]))
            except ValueError as e:
                raise IngressError(422, f"{name}: {e}") from None
        dep = self.registry.deployment(svc.deployment_id)
        if dep is None:
            raise IngressError(404, f"The requested service '{svc.name}' does not exist")
        if changes:
            manifest = copy.deepcopy(dep.manifest)
            entry = next(s for s in manifest["services"] if s["name"] == svc.name)
            entry.update(changes)
            if "ingressPrivate" in changes:  # the service's choice wins over its handlers' own
                for h in entry.get("handlers", []):
                    h.pop("ingressPrivate", None)
            await in_thread(self.registry.publish, Deployment.from_record(_record(dep, manifest)))
        return web.json_response(service_metadata(self.registry.service(svc.name) or svc, self.cfg))


def _restate_type(ty: str) -> str:
    return {"SERVICE": "Service", "VIRTUAL_OBJECT": "VirtualObject", "WORKFLOW": "Workflow"}.get(ty, ty)


def _record(dep: Deployment, manifest: dict[str, Any]) -> dict[str, Any]:
    return {"id": dep.id, "uri": dep.uri, "use_http_11": dep.use_http_11, "additional_headers": dep.additional_headers,
            "manifest_json": json.dumps(manifest), "created_ms": dep.created_ms}


def _sorted_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)  # keys in order, as Restate writes the document


def _headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise IngressError(400, "additional_headers must map names to strings")
    return dict(value)
