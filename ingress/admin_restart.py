"""``PATCH /invocations/{id}/restart-as-new``, as Restate 1.7's admin API.

A new invocation from a completed one: ``from`` (the last journal index to copy; none or 0: only
the input) and ``deployment`` (with ``from``: ``keep``, ``latest`` or a deployment id) are checked
here, and the restart is an AdminCommand record on the invocation's partition, which creates the new
invocation and answers with its id (``partitions/core/restart.py``). 200 with Restate's
``RestartAsNewInvocationResponse``; the refusals are Restate's (400, 404, 409, 410, 422, 425).
"""

from __future__ import annotations

import json
import re
import uuid

from aiohttp import web

from reprise.engine.ids import InvocationId
from reprise.engine.registry import Registry
from reprise.ingress.errors import IngressError, error_response
from reprise.ingress.log_client import LogClient

_DEPLOYMENT_ID = re.compile(r"dp_[0-9A-Za-z]{1,64}")


class RestartRoutes:
    def __init__(self, registry: Registry, log: LogClient) -> None:
        self.registry, self.log = registry, log

    def add_to(self, router: web.UrlDispatcher) -> None:
        """Before ``/invocations/{id}/{command}``, which would answer without the new id."""
        router.add_patch("/invocations/{id}/restart-as-new", self.restart_as_new)

    async def restart_as_new(self, request: web.Request) -> web.Response:
        try:
            inv = InvocationId.parse(request.match_info["id"])
        except ValueError as e:
            return error_response(400, f"The request field 'invocation_id' is invalid. Reason: {e}")
        start = request.query.get("from")
        if start is not None and not (start.isascii() and start.isdigit() and int(start) < 2**32):
            return error_response(400, "Failed to deserialize query string: from: invalid digit found in string")
        deployment = request.query.get("deployment")
        pinned: str | None = None  # the latest deployment
        if deployment is not None and deployment.lower() == "keep":
            pinned = "keep"
        elif deployment is not None and deployment.lower() != "latest":
            if not _DEPLOYMENT_ID.fullmatch(deployment):
                return error_response(400, "The query parameter 'deployment' is invalid. Reason: bad format")
            if self.registry.deployment(deployment) is None:
                return error_response(400, f"The given deployment was not found when trying to restart as new "
                                           f"the invocation '{inv}'.")
            pinned = deployment
        request_id = f"admin-{uuid.uuid4().hex}"
        try:
            reply = await self.log.request("AdminCommand", self.log.partition_of(inv), {
                "invocation_id": str(inv), "command": "restart-as-new", "reply_to": self.log.reply_to(request_id),
                "restart_from": int(start) if start is not None else None, "restart_deployment": pinned},
                request_id)
        except IngressError as e:
            return error_response(e.code, e.message)
        if reply["failure"] is not None:
            return error_response(reply["failure"]["code"], reply["failure"]["message"])
        return web.json_response({"new_invocation_id": json.loads(reply["value"])["new_invocation_id"]})
