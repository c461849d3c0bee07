"""The metrics move with the work: an engine's /metrics after calls, sends, a failure, a bad and a
malformed request shows the ingress's, the processor's and librdkafka's series with the values
that work implies (docs/metrics.md)."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import Background, Engine, call_json, post

pytestmark = pytest.mark.kafka

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(engine: Engine) -> Samples:
    """Every sample of the engine's admin /metrics, by name and labels."""
    status, body = post(engine.admin + "/metrics", method="GET")
    assert status == 200, status
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def series(samples: Samples, name: str, **labels: str) -> list[dict[str, str]]:
    wanted = set(labels.items())
    return [dict(ls) for (n, ls) in samples if n == name and wanted <= ls]


def wait_for(engine: Engine, ok: Callable[[Samples], bool], what: str, timeout: float = 45.0) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(engine)
        if ok(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def malformed_request(engine: Engine) -> bytes:
    """Bytes that are no HTTP request, sent to the ingress port; its answer."""
    with socket.create_connection(("127.0.0.1", urlsplit(engine.ingress).port), timeout=10) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        return s.recv(4096)


def test_ingress_processor_and_kafka_metrics_move_with_the_work(module_engine: Engine) -> None:
    eng, key = module_engine, f"m{uuid.uuid4().hex[:8]}"
    before = scrape(eng)
    held = Background(call_json, eng, f"/Counter/{key}-held/hold", 4000, 90)  # in flight for a while
    for i in range(3):
        assert call_json(eng, f"/Counter/{key}/add", 1) == (200, i + 1)
    assert call_json(eng, "/Errors/terminal", "no")[0] == 400
    assert call_json(eng, f"/Counter/{key}/add/send", 1)[0] == 202
    assert call_json(eng, f"/Counter/{key}-later/add/send?delay=10m", 1)[0] == 202  # a timer, pending
    assert call_json(eng, "/NoSuchService/handler", 1)[0] == 404
    assert malformed_request(eng).startswith(b"HTTP/1.1 400")

    def calls(samples: Samples, **labels: str) -> float:
        return (total(samples, "reprise_ingress_requests_total", **labels)
                - total(before, "reprise_ingress_requests_total", **labels))

    wait_for(eng, lambda s: total(s, "reprise_ingress_requests_in_flight") >= 1, "the held call in flight")
    assert held.result() == (200, "held")

    def settled(s: Samples) -> bool:
        """The completions counted, the delayed send's timer sampled, and a statistics report from each
        Kafka client since the work (every few seconds)."""
        completed = "reprise_invocations_completed_total"
        return (total(s, completed, service="Counter", handler="add", outcome="succeeded")
                - total(before, completed, service="Counter", handler="add", outcome="succeeded") >= 4
                and total(s, "reprise_timers_pending") >= 1
                and total(s, "reprise_kafka_tx_messages_total", client="ingress-producer") > 0
                and total(s, "reprise_kafka_tx_messages_total", client="processor-producer") > 0
                and total(s, "reprise_kafka_rx_messages_total", client="processor-consumer") > 0)

    after = wait_for(eng, settled, "the completions, the store sample and the Kafka statistics")
    # ingress: by route kind, status, registered service and handler; an unregistered name is no label
    assert calls(after, kind="call", status="200", service="Counter", handler="add") == 3
    assert calls(after, kind="call", status="400", service="Errors", handler="terminal") == 1
    assert calls(after, kind="send", status="202", service="Counter", handler="add") == 2
    assert calls(after, kind="call", status="404", service="", handler="") == 1
    assert calls(after, kind="protocol", status="400") == 1
    assert not series(after, "reprise_ingress_requests_total", service="NoSuchService")
    assert calls(after, kind="admin", status="200") >= 2  # the scrapes themselves: the admin API's requests
    assert post(eng.admin + "/deployments/nope", method="GET")[0] == 404
    assert total(scrape(eng), "reprise_ingress_requests_total", kind="admin", status="404") >= 1
    latency = ("reprise_ingress_request_seconds_count", "reprise_ingress_request_seconds_bucket")
    labels = {"kind": "call", "status": "200", "service": "Counter", "handler": "add"}
    assert total(after, latency[0], **labels) - total(before, latency[0], **labels) == 3
    assert total(after, latency[1], le="+Inf", **labels) == total(after, latency[0], **labels)
    assert total(after, "reprise_ingress_request_seconds_sum", **labels) > 0
    assert total(after, "reprise_ingress_requests_in_flight") == 0
    for name in ("reprise_ingress_overloaded_total", "reprise_ingress_unavailable_total"):
        assert series(after, name), name
    # processor: completions by outcome, with the service and handler
    assert total(after, "reprise_invocations_completed_total", service="Errors", handler="terminal",
                 outcome="failed") - total(before, "reprise_invocations_completed_total", service="Errors",
                                           handler="terminal", outcome="failed") == 1
    # store gauges, sampled: every partition has a store with rows in it somewhere
    partitions = {s["partition"] for s in series(after, "reprise_store_memtable_bytes")}
    assert partitions == {"0", "1", "2", "3"}, partitions
    assert total(after, "reprise_store_keys") > 0 and total(after, "reprise_store_memtable_bytes") > 0
    for name in ("reprise_store_live_data_bytes", "reprise_store_sst_bytes", "reprise_outbox_backlog",
                 "reprise_changelog_lag_records", "reprise_timers_pending"):
        assert {s["partition"] for s in series(after, name)} == partitions, name
    # librdkafka's statistics, per client (their counts: settled above)
    assert series(after, "reprise_kafka_broker_rtt_seconds", client="processor-consumer")
    assert total(after, "reprise_kafka_broker_up", client="ingress-producer") >= 1
    lagging = series(after, "reprise_kafka_consumer_lag_records", client="processor-consumer")
    assert {s["partition"] for s in lagging if s["topic"].endswith(".log")} == partitions, lagging
