"""Discovery: ask a service deployment what it serves (``GET {uri}/discover``)."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import httpx

from reprise.engine.identity import RequestSigner
from reprise.engine.ids import resource_id

log = logging.getLogger(__name__)

ACCEPT = ", ".join(f"application/vnd.restate.endpointmanifest.v{v}+json" for v in (4, 3, 2))
PROTOCOL_VERSION = 6  # the one invocation protocol version Reprise speaks


UNREACHABLE = "META0003"  # Restate's code: the deployment could not be reached or answered an error
UNSUPPORTED_PROTOCOL = "META0012"  # Restate's code: no service protocol version in common


class DiscoveryError(Exception):
    """The deployment could not be discovered, or its manifest is unusable; the text says why, and
    ``restate_code`` the Restate error code of the failure where Restate names one."""

    def __init__(self, message: str, restate_code: str | None = None) -> None:
        super().__init__(message)
        self.restate_code = restate_code


def deployment_id(uri: str) -> str:
    """Restate's form (``dp_1`` and a base62 u128: its CLI parses ids), derived from the uri so that
    registering the same uri again names the same deployment."""
    return resource_id("dp", int.from_bytes(hashlib.sha256(uri.encode()).digest()[:16], "big"))


def http_client(use_http_11: bool, timeout: float) -> httpx.AsyncClient:
    """HTTP/1.1, or h2c with prior knowledge (Restate's default for http:// deployments)."""
    if use_http_11:
        return httpx.AsyncClient(http1=True, http2=False, timeout=timeout)
    return httpx.AsyncClient(http1=False, http2=True, timeout=timeout)


async def discover(uri: str, use_http_11: bool, headers: dict[str, str],
                   timeout: float = 10.0, signer: RequestSigner | None = None) -> dict[str, Any]:
    """Fetch and validate the endpoint manifest. A refusal's body goes to this process's log, not into
    the error: the admin client learns the status, not what the remote server chose to say."""
    url = uri.rstrip("/") + "/discover"
    sent = {"accept": ACCEPT, **headers, **(signer.headers("/discover") if signer is not None else {})}
    try:
        async with http_client(use_http_11, timeout) as client:
            resp = await client.get(url, headers=sent)
    except httpx.HTTPError as e:
        raise DiscoveryError(f"cannot reach {url}: {type(e).__name__}: {str(e)[:200]}", UNREACHABLE) from None
    if resp.status_code != 200:
        log.warning("discovery of %s answered %s: %s", url, resp.status_code, resp.text[:2000])
        reason = resp.reason_phrase or "error"
        hint = (": the deployment refuses requests without this engine's request identity (docs/security.md)"
                if resp.status_code in (401, 403) else "; the engine's log has the response body")
        raise DiscoveryError(f"{url} answered {resp.status_code} {reason}{hint}", UNREACHABLE)
    try:
        manifest = resp.json()
    except ValueError:
        raise DiscoveryError(f"{url} did not return a JSON manifest") from None
    validate(manifest)
    if resp.headers.get("x-restate-server"):
        manifest["_sdk"] = resp.headers["x-restate-server"]  # e.g. restate-sdk-python/1.2.0
    return manifest


def validate(manifest: dict[str, Any]) -> None:
    if not isinstance(manifest, dict) or "protocolMode" not in manifest:
        raise DiscoveryError("manifest lacks protocolMode")
    lo, hi = manifest.get("minProtocolVersion"), manifest.get("maxProtocolVersion")
    if not isinstance(lo, int) or not isinstance(hi, int) or not lo <= PROTOCOL_VERSION <= hi:
        raise DiscoveryError(f"deployment speaks service protocol V{lo}..V{hi}; Reprise needs V{PROTOCOL_VERSION}",
                             UNSUPPORTED_PROTOCOL)
    if not isinstance(manifest.get("services"), list):
        raise DiscoveryError("manifest lacks services")
    for s in manifest["services"]:
        if not isinstance(s, dict) or not s.get("name") or s.get("ty") not in ("SERVICE", "VIRTUAL_OBJECT", "WORKFLOW"):
            raise DiscoveryError("manifest has a malformed service entry (a name and a ty of SERVICE, "
                                 "VIRTUAL_OBJECT or WORKFLOW expected)")
