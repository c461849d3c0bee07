"""Credential headers are recognised by name, case-insensitively, in journals and deployment headers."""

from __future__ import annotations

from reprise.engine.introspection import REDACTED, is_credential_header, redact_header_map, redact_headers
from reprise.engine.registry import Deployment


def test_credential_header_names() -> None:
    for name in ("Authorization", "proxy-authorization", "Cookie", "X-API-Key", "apikey", "x-my-service-token",
                 "x-client-secret", "X-Amz-Security-Token"):
        assert is_credential_header(name), name
    for name in ("content-type", "x-visible", "x-request-id", "accept"):
        assert not is_credential_header(name), name


def test_maps_and_journals_are_redacted_alike() -> None:
    headers = {"X-Api-Key": "k", "x-visible": "v"}
    assert redact_header_map(headers) == {"X-Api-Key": REDACTED, "x-visible": "v"}
    entry = {"headers": [{"key": "X-Api-Key", "value": "k"}, {"key": "x-visible", "value": "v"}]}
    assert redact_headers(entry) == {"headers": [{"key": "X-Api-Key", "value": REDACTED},
                                                 {"key": "x-visible", "value": "v"}]}


def test_a_deployment_describes_its_headers_redacted_and_keeps_them() -> None:
    dep = Deployment.new("http://127.0.0.1:9", False, {"authorization": "Bearer s3cret", "x-tenant": "t1"},
                         {"services": []})
    assert dep.describe()["additional_headers"] == {"authorization": REDACTED, "x-tenant": "t1"}
    assert dep.additional_headers["authorization"] == "Bearer s3cret"  # the invoker sends the real value
