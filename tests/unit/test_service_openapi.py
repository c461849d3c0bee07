"""A service's OpenAPI document (ingress/service_openapi.py) against what Restate 1.7.12 served for the
same manifests (tests/unit/fixtures/service_openapi.json: typed Python SDK services, and hand-written
manifests for the branches the SDK does not produce)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from reprise.engine.registry import parse_service
from reprise.ingress.service_openapi import service_openapi

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "service_openapi.json").read_text())


def _expected(case: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy each time: callers adjust it (the integration test sets its own server)."""
    common = FIXTURE["common"]
    return copy.deepcopy({"components": {"parameters": common["parameters"], "responses": common["responses"],
                           "schemas": {"RestateError": common["RestateError"], **case["schemas"]}},
            "info": case["info"], "openapi": "3.1.0", "paths": case["paths"],
            "servers": [{"description": "Restate Ingress URL", "url": FIXTURE["ingress_url"]}],
            "tags": common["tags"]})


@pytest.mark.parametrize("case", FIXTURE["services"], ids=[c["manifest"]["name"] for c in FIXTURE["services"]])
def test_document_is_restates(case: dict[str, Any]) -> None:
    svc = parse_service(case["manifest"], "dp_test", case["revision"])
    doc = json.loads(json.dumps(service_openapi(svc, FIXTURE["ingress_url"])))  # as the admin API writes it
    expected = _expected(case)
    assert list(doc["paths"]) == sorted(expected["paths"])
    for path, ops in expected["paths"].items():
        assert doc["paths"][path] == ops, path
    assert doc == expected


def test_private_handler_left_out_and_refs_rebased() -> None:
    """The properties the fixture cases exercise, said plainly (a failure here names what broke)."""
    by_name = {c["manifest"]["name"]: c for c in FIXTURE["services"]}
    scratch = service_openapi(parse_service(by_name["Scratch"]["manifest"], "dp", 1), "http://x/")
    assert not any("/hidden" in p for p in scratch["paths"])
    shop = service_openapi(parse_service(by_name["Shop"]["manifest"], "dp", 2), "http://x/")
    items = shop["components"]["schemas"]["placeResponse"]["properties"]["lines"]["items"]
    assert items == {"$ref": "#/components/schemas/placeResponse/$defs/Line"}
