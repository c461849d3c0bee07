"""The ingress's metrics (ingress/metrics.py): every answer counted by route kind, status, registered
service and handler, with its latency; in flight; 429 and 503 counted; nothing labelled from a name
the client made up."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from reprise.engine.registry import HandlerInfo, ServiceInfo
from reprise.ingress.errors import IngressError
from reprise.ingress.http1 import Request
from reprise.ingress.metrics import BUCKETS, INGRESS, IngressMetrics
from reprise.ingress.server import Admission, Ingress

SERVICES = {"Greeter": ServiceInfo("Greeter", "SERVICE", "dp", {"greet": HandlerInfo("greet", None)})}


class Registry:
    def service(self, name: str) -> ServiceInfo | None:
        return SERVICES.get(name)


class Log:
    """The log client's face to ``invoke``: every write refused as Kafka being unreachable would."""

    def __init__(self) -> None:
        self.gate: asyncio.Event | None = None

    def partition_of(self, _inv: Any) -> int:
        return 0

    def reply_to(self, request_id: str) -> dict[str, str]:
        return {"topic": "replies", "ingress_id": "i", "request_id": request_id}

    async def produce(self, *_a: Any) -> None:
        if self.gate is not None:
            await self.gate.wait()
        raise IngressError(503, "log unavailable")

    request = produce


def ingress(limit: int = 10) -> Ingress:
    ing = Ingress.__new__(Ingress)  # the routing and accounting only: no Kafka, no HTTP server
    ing.registry, ing.log, ing._admission = Registry(), Log(), Admission(limit)  # noqa: SLF001
    return ing


def samples(metrics: IngressMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    return {(s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text)
            for s in f.samples}


def count(s: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in s.items() if n == name and set(labels.items()) <= ls)


def request(method: str, path: str) -> Request:
    return Request(method, path, "", {"content-type": "application/json"}, [], b"{}")


def test_answers_are_counted_by_kind_status_service_and_handler() -> None:
    before = samples(INGRESS)

    async def run() -> None:
        ing = ingress()
        assert (await ing.handle(request("GET", "/restate/health"))).status == 200
        assert (await ing.handle(request("POST", "/Greeter/greet/send"))).status == 503
        assert (await ing.handle(request("POST", "/Greeter/greet"))).status == 503
        assert (await ing.handle(request("POST", "/Invented/x"))).status == 404
        assert (await ing.handle(request("POST", "/Invented/x/send"))).status == 404
        assert (await ing.handle(request("POST", "/restate/invocation/bad-id/attach"))).status == 400
        assert (await ing.handle(request("POST", "/restate/a/bad/resolve"))).status == 400
        assert (await ingress(limit=0).handle(request("POST", "/Greeter/greet"))).status == 429

    asyncio.run(run())
    after = samples(INGRESS)

    def moved(name: str, **labels: str) -> float:
        return count(after, name, **labels) - count(before, name, **labels)

    requests = "reprise_ingress_requests_total"
    assert moved(requests, kind="health", status="200") == 1
    assert moved(requests, kind="send", status="503", service="Greeter", handler="greet") == 1
    assert moved(requests, kind="call", status="503", service="Greeter", handler="greet") == 1
    assert moved(requests, kind="call", status="429", service="Greeter", handler="greet") == 1
    assert moved(requests, kind="call", status="404", service="", handler="") == 1
    assert moved(requests, kind="send", status="404", service="", handler="") == 1
    assert moved(requests, kind="attach", status="400") == 1
    assert moved(requests, kind="awakeable", status="400") == 1
    assert not [ls for (n, ls) in after if ("service", "Invented") in ls]
    assert moved("reprise_ingress_unavailable_total") == 2
    assert moved("reprise_ingress_overloaded_total") == 1
    assert moved("reprise_ingress_request_seconds_count", kind="call", status="503", service="Greeter") == 1
    assert count(after, "reprise_ingress_requests_in_flight") == 0


def test_requests_waiting_are_in_flight_until_answered() -> None:
    async def run() -> None:
        ing = ingress()
        ing.log.gate = asyncio.Event()
        before = INGRESS.in_flight
        waiting = [asyncio.ensure_future(ing.handle(request("POST", "/Greeter/greet"))) for _ in range(3)]
        await asyncio.sleep(0)
        assert INGRESS.in_flight - before == 3
        assert count(samples(INGRESS), "reprise_ingress_requests_in_flight") == INGRESS.in_flight
        waiting[0].cancel()  # a client that went away: counted as 499, no longer in flight
        ing.log.gate.set()
        done = await asyncio.gather(*waiting, return_exceptions=True)
        assert [getattr(r, "status", None) for r in done] == [None, 503, 503]
        assert INGRESS.in_flight == before

    before = samples(INGRESS)
    asyncio.run(run())
    assert (count(samples(INGRESS), "reprise_ingress_requests_total", status="499")
            - count(before, "reprise_ingress_requests_total", status="499")) == 1


def test_latency_lands_in_cumulative_buckets() -> None:
    m = IngressMetrics()
    for seconds in (0.0004, 0.001, 0.003, 0.003, 7.0, 1000.0):
        m.observe("call", 200, "Greeter", "greet", seconds)
    m.refused(413)
    s = samples(m)
    labels = {"kind": "call", "status": "200", "service": "Greeter", "handler": "greet"}
    bucket = "reprise_ingress_request_seconds_bucket"
    assert count(s, bucket, le="0.001", **labels) == 2  # le: a value on a bound counts in it
    assert count(s, bucket, le="0.005", **labels) == 4
    assert count(s, bucket, le=repr(BUCKETS[-1]), **labels) == 5
    assert count(s, bucket, le="+Inf", **labels) == 6
    assert count(s, "reprise_ingress_request_seconds_sum", **labels) == sum((0.0004, 0.001, 0.003, 0.003, 7.0, 1000.0))
    assert count(s, "reprise_ingress_requests_total", kind="protocol", status="413") == 1
    assert not [k for k in s if k[0] == "reprise_ingress_request_seconds_count" and ("kind", "protocol") in k[1]]
