"""The registry's revisions and removals, and how the admin API writes them (Restate's schema)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reprise.engine.config import Config
from reprise.engine.discovery import deployment_id
from reprise.engine.durations import format_ms, parse_ms
from reprise.engine.registry import Deployment, Registry
from reprise.ingress.admin_schema import deployment_summary, handler_metadata, service_metadata

CFG = Config()


def _service(name: str, ty: str = "SERVICE", **options: Any) -> dict[str, Any]:
    handler = {"name": "run", "input": {"required": False, "contentType": "application/json",
                                        "jsonSchema": {"type": "string"}}, "output": {"setContentTypeIfEmpty": False}}
    if ty == "VIRTUAL_OBJECT":
        handler["ty"] = "SHARED"
    return {"name": name, "ty": ty, "handlers": [handler], **options}


def _record(uri: str, services: list[dict[str, Any]], created_ms: int, revisions: dict[str, int]) -> dict[str, Any]:
    manifest = {"protocolMode": "BIDI_STREAM", "minProtocolVersion": 5, "maxProtocolVersion": 6,
                "services": services, "_revisions": revisions}
    return {"id": deployment_id(uri), "uri": uri, "use_http_11": False, "additional_headers": {},
            "manifest_json": json.dumps(manifest), "created_ms": created_ms}


def test_a_forced_reregistration_drops_stale_services_and_a_removal_falls_back() -> None:
    reg = Registry(CFG)
    reg._on_record(b"", _record("http://a", [_service("A"), _service("B")], 1, {"A": 1, "B": 1}))
    reg._on_record(b"", _record("http://b", [_service("A")], 2, {"A": 2}))
    assert reg.service("A").deployment_id == deployment_id("http://b")
    reg._on_record(b"", _record("http://b", [_service("C")], 3, {"C": 1}))  # forced: b now serves only C
    assert reg.service("A").deployment_id == deployment_id("http://a"), "A falls back to its revision on a"
    assert {s.name for s in reg.services()} == {"A", "B", "C"}
    reg._on_record(b"", _record("http://a", [_service("B")], 4, {"B": 2}))  # forced: a no longer serves A
    assert reg.service("A") is None, "a service no deployment serves any more is gone"
    reg._on_record(deployment_id("http://a").encode(), None)  # removed
    assert [s.name for s in reg.services()] == ["C"] and reg.deployment(deployment_id("http://a")) is None


def test_services_and_handlers_as_restate_writes_them() -> None:
    dep = Deployment.from_record(_record("http://a", [
        _service("Obj", "VIRTUAL_OBJECT", idempotencyRetention=7_200_000, ingressPrivate=True),
        _service("Flow", "WORKFLOW")], 1_700_000_000_123, {"Obj": 3, "Flow": 1}))
    obj, flow = dep.services
    out = service_metadata(obj, CFG)
    assert (out["ty"], out["revision"], out["public"]) == ("VirtualObject", 3, False)
    assert out["idempotency_retention"] == "2h"
    assert "workflow_completion_retention" not in out and service_metadata(flow, CFG)["ty"] == "Workflow"
    assert service_metadata(flow, CFG)["workflow_completion_retention"] == "1d"
    h = handler_metadata(obj, obj.handlers["run"])
    assert (h["ty"], h["input_description"], h["output_description"]) == ("Shared", "JSON string", "none")
    summary = deployment_summary(dep)
    assert summary["id"].startswith("dp_1") and len(summary["id"]) == 26
    assert summary["protocol_type"] == "BidiStream" and summary["created_at"] == "2023-11-14T22:13:20.123000000Z"
    assert summary["services"] == [{"name": "Obj", "revision": 3}, {"name": "Flow", "revision": 1}]


@pytest.mark.parametrize("text,ms", [("1d", 86_400_000), ("1h 30m", 5_400_000), ("500ms", 500), ("5 hours", 18_000_000),
                                     ("PT1H30M", 5_400_000), ("P1D", 86_400_000), ("2 days, 3h", 183_600_000)])
def test_durations_in_restates_forms(text: str, ms: int) -> None:
    assert parse_ms(text) == ms
    assert parse_ms(format_ms(ms)) == ms


@pytest.mark.parametrize("bad", ["", "blah", "5", "1 fortnight", "PT"])
def test_a_bad_duration_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_ms(bad)
