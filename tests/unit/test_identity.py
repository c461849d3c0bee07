"""Request identity v1 (engine/identity.py), checked by the official restate-sdk's own verifier."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from restate._internal import IdentityVerificationException, PyIdentityVerifier

from reprise.engine import identity
from reprise.engine.identity import IdentityKeyError, RequestSigner, base58, generate_pem, load_private_key

# Restate's own test vector (its server's request identity tests): this key's id is known.
RESTATE_TEST_KEY = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIPe++4ZTPQDF81otpoU/mOGHC2vOAVp9WbiCblvn3nXO
-----END PRIVATE KEY-----
"""


def _signer(tmp_path: Path, pem: bytes = RESTATE_TEST_KEY) -> RequestSigner:
    f = tmp_path / f"key{len(list(tmp_path.iterdir()))}.pem"
    f.write_bytes(pem)
    return RequestSigner.from_pem_file(str(f))


def test_public_key_in_restates_format(tmp_path: Path) -> None:
    assert _signer(tmp_path).key_id == "publickeyv1_AfQwmwfgEZhrWpvv8N52SHpRtZqGGaFr4AZN6qtYWSiY"
    assert base58(b"\0\0\x01") == "112"


def test_the_sdk_accepts_our_tokens_for_their_path_only(tmp_path: Path) -> None:
    signer = _signer(tmp_path)
    verifier = PyIdentityVerifier([signer.key_id])
    headers = signer.headers("/invoke/Greeter/greet")
    assert headers["x-restate-signature-scheme"] == "v1"
    verifier.verify(list(headers.items()), "/invoke/Greeter/greet")
    verifier.verify(list(headers.items()), "/prefix/invoke/Greeter/greet")  # the SDK normalises the path
    verifier.verify(list(signer.headers("/discover").items()), "/discover")
    with pytest.raises(IdentityVerificationException):
        verifier.verify(list(headers.items()), "/invoke/Greeter/other")
    with pytest.raises(IdentityVerificationException):
        verifier.verify([], "/invoke/Greeter/greet")
    other = _signer(tmp_path, generate_pem())
    with pytest.raises(IdentityVerificationException):
        verifier.verify(list(other.headers("/invoke/Greeter/greet").items()), "/invoke/Greeter/greet")


def test_claims_as_restate_sends_them(tmp_path: Path) -> None:
    token = _signer(tmp_path).token("/invoke/A/b", now=1_700_000_000)
    header, claims = (json.loads(base64.urlsafe_b64decode(p + "==")) for p in token.split(".")[:2])
    assert header == {"typ": "JWT", "alg": "EdDSA",
                      "kid": "publickeyv1_AfQwmwfgEZhrWpvv8N52SHpRtZqGGaFr4AZN6qtYWSiY"}
    assert claims == {"aud": "/invoke/A/b", "iat": 1_700_000_000, "nbf": 1_700_000_000 - 60,
                      "exp": 1_700_000_000 + 60}


def test_expired_tokens_are_refused_and_the_cache_renews_them(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    signer = _signer(tmp_path)
    verifier = PyIdentityVerifier([signer.key_id])
    stale = signer.token("/invoke/A/b", now=1_000_000)
    with pytest.raises(IdentityVerificationException):
        verifier.verify([("x-restate-signature-scheme", "v1"), ("x-restate-jwt-v1", stale)], "/invoke/A/b")
    clock = [1000.0]
    monkeypatch.setattr(identity.time, "monotonic", lambda: clock[0])
    first = signer.headers("/invoke/A/b")
    assert signer.headers("/invoke/A/b") is first  # reused: no signature per request
    clock[0] += identity.REUSE_S + 1
    assert signer.headers("/invoke/A/b") is not first


def test_bad_key_files(tmp_path: Path) -> None:
    with pytest.raises(IdentityKeyError, match="cannot read"):
        load_private_key(str(tmp_path / "missing.pem"))
    (tmp_path / "junk.pem").write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(IdentityKeyError, match="not a readable"):
        load_private_key(str(tmp_path / "junk.pem"))
    (tmp_path / "two.pem").write_bytes(RESTATE_TEST_KEY * 2)
    with pytest.raises(IdentityKeyError, match="exactly one"):
        load_private_key(str(tmp_path / "two.pem"))
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "ec.pem").write_bytes(ec_pem)
    with pytest.raises(IdentityKeyError, match="must be Ed25519"):
        load_private_key(str(tmp_path / "ec.pem"))


def test_redaction_of_credential_headers() -> None:
    from reprise.engine.introspection import REDACTED, redact_headers

    described = {"id": "inv_1", "journal": [
        {"index": 0, "type": "InputCommandMessage", "headers": [
            {"key": "Authorization", "value": "Bearer abc"}, {"key": "cookie", "value": "s=1"},
            {"key": "x-trace", "value": "t1"}]},
        {"index": 1, "type": "CallCommandMessage", "headers": [
            {"key": "proxy-authorization", "value": "Basic x"}, {"key": "set-cookie", "value": "a=b"},
            {"key": "x-restate-jwt-v1", "value": "eyJ"}]},
    ]}
    out = redact_headers(described)
    values = {h["key"]: h["value"] for e in out["journal"] for h in e["headers"]}
    assert values == {"Authorization": REDACTED, "cookie": REDACTED, "x-trace": "t1",
                      "proxy-authorization": REDACTED, "set-cookie": REDACTED, "x-restate-jwt-v1": REDACTED}
    assert described["journal"][0]["headers"][0]["value"] == "Bearer abc"  # the input is not modified
