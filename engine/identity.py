"""Restate's request identity v1: every request to a service carries an Ed25519-signed JWT.

A service built with an official SDK and configured with the engine's public key
(``identity_keys=["publickeyv1_..."]`` in restate-sdk, ``WithIdentityV1`` in the Go SDK) refuses
every request that does not carry a valid token, so only this engine can drive its handlers.

The token is what Restate's server sends: header ``{"typ": "JWT", "alg": "EdDSA", "kid":
"publickeyv1_<base58 of the raw public key>"}``, claims ``aud`` (the request path, e.g.
``/invoke/Greeter/greet`` or ``/discover``), ``iat`` (now), ``nbf`` (now - 60 s) and ``exp``
(now + 60 s). A token is reused for the same path for ``REUSE_S``, so the hot path pays one dict
lookup per request rather than one signature (~50 µs).
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SCHEME_HEADER = "x-restate-signature-scheme"
JWT_HEADER = "x-restate-jwt-v1"
PUBLIC_KEY_PREFIX = "publickeyv1_"
LEEWAY_S = 60  # Restate's: nbf = iat - 60, exp = iat + 60
REUSE_S = 20  # a cached token still has at least 40 s of validity when it is last sent

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class IdentityKeyError(Exception):
    """The private key file is missing, unreadable or not one Ed25519 key in PKCS#8 PEM."""


def base58(data: bytes) -> str:
    """Bitcoin-alphabet base58, as Restate encodes its public keys."""
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def generate_pem() -> bytes:
    """A new Ed25519 private key in PKCS#8 PEM (what ``openssl genpkey -algorithm ed25519`` writes)."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def load_private_key(path: str) -> Ed25519PrivateKey:
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise IdentityKeyError(f"cannot read the request identity key {path}: {e}") from None
    if raw.count(b"-----BEGIN ") != 1:
        raise IdentityKeyError(f"{path}: expected exactly one PEM private key")
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError) as e:
        raise IdentityKeyError(f"{path}: not a readable PEM private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise IdentityKeyError(f"{path}: the request identity key must be Ed25519, not {type(key).__name__}")
    return key


def public_key_id(key: Ed25519PrivateKey) -> str:
    """``publickeyv1_<base58>``: the form a service's ``identity_keys`` takes."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + base58(raw)


class RequestSigner:
    """Signs requests with one key; tokens cached per path for ``REUSE_S``."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.key_id = public_key_id(key)
        self._header = _b64url(orjson.dumps({"typ": "JWT", "alg": "EdDSA", "kid": self.key_id}))
        self._cache: dict[str, tuple[float, dict[str, str]]] = {}

    @classmethod
    def from_pem_file(cls, path: str) -> RequestSigner:
        return cls(load_private_key(path))

    def token(self, path: str, now: float | None = None) -> str:
        """A fresh JWT whose audience is ``path``."""
        iat = int(time.time() if now is None else now)
        claims = _b64url(orjson.dumps({"aud": path, "exp": iat + LEEWAY_S, "iat": iat, "nbf": iat - LEEWAY_S}))
        signing_input = f"{self._header}.{claims}"
        return f"{signing_input}.{_b64url(self._key.sign(signing_input.encode()))}"

    def headers(self, path: str) -> dict[str, str]:
        """The two headers for a request to ``path``: a cached token while it is young, else a new one."""
        now = time.monotonic()
        hit = self._cache.get(path)
        if hit is not None and now - hit[0] < REUSE_S:
            return hit[1]
        if len(self._cache) > 10_000:  # paths are /invoke/<service>/<handler>: bounded by the registry
            self._cache.clear()
        signed = {SCHEME_HEADER: "v1", JWT_HEADER: self.token(path)}
        self._cache[path] = (now, signed)
        return signed


def signer_from(path: str) -> RequestSigner | None:
    """The signer for a configured key file; None when none is configured (requests go unsigned)."""
    return RequestSigner.from_pem_file(path) if path else None


def answered(status: int, body: bytes) -> str:
    """An attempt's failure text for a non-200 answer; a 401/403 says what request identity has to do with it
    (first, so a truncated log line still says it)."""
    text = body[:300].decode(errors="replace")
    if status in (401, 403):
        return (f"deployment answered {status}: a service configured with identity keys refuses requests this "
                "engine did not sign with one of them (set REPRISE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE to the "
                f"matching key; docs/security.md): {text}")
    return f"deployment answered {status}: {text}"
