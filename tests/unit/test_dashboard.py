"""The Grafana dashboard (deploy/observe/grafana-dashboard.json) and the metrics reference
(docs/metrics.md) agree with the metrics the engine registers: every metric a query names exists,
every template variable is defined and used, and every metric is documented."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import reprise.deploy.runtime  # noqa: F401 - what a process runs: importing it registers every metric

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "deploy" / "observe" / "grafana-dashboard.json").read_text())
VARIABLES = {"datasource", "instance", "service", "handler", "partition"}


def exported() -> set[str]:
    """Every series name the registry can export (a labelled metric without children has no samples)."""
    names = set()
    for family in REGISTRY.collect():
        names |= {family.name, *(family.name + suffix for suffix in ("_total", "_bucket", "_count", "_sum"))}
    return names


def queries() -> list[str]:
    exprs = [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])]
    variables = [v["query"]["query"] for v in DASHBOARD["templating"]["list"] if v["type"] == "query"]
    return exprs + variables


def metric_names(query: str) -> set[str]:
    """Series names in a PromQL query: before a label matcher, or a first argument of label_values."""
    bare = re.sub(r'"[^"]*"', '""', query)
    return (set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", bare)) | set(re.findall(r"\breprise_\w+", bare))
            | set(re.findall(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", bare)))


def test_every_query_names_a_metric_the_engine_exports() -> None:
    known = exported()
    for query in queries():
        names = metric_names(query)
        assert names, query
        assert names <= known, (query, names - known)


def test_the_dashboard_covers_ingress_processor_store_and_kafka_metrics() -> None:
    named = set().union(*(metric_names(q) for q in queries()))
    for wanted in ("reprise_ingress_requests_total", "reprise_ingress_request_seconds_bucket",
                   "reprise_ingress_requests_in_flight", "reprise_ingress_overloaded_total",
                   "reprise_ingress_unavailable_total", "reprise_invocations_completed_total",
                   "reprise_rebalance_partitions_total", "reprise_restore_seconds_count",
                   "reprise_store_live_data_bytes", "reprise_timers_pending", "reprise_outbox_backlog",
                   "reprise_changelog_lag_records",
                   "reprise_kafka_broker_rtt_seconds", "reprise_kafka_tx_messages_total",
                   "reprise_kafka_consumer_lag_records", "reprise_kafka_queue_messages"):
        assert wanted in named, wanted


def test_template_variables_are_defined_and_every_one_is_used() -> None:
    defined = {v["name"] for v in DASHBOARD["templating"]["list"]}
    assert defined == VARIABLES
    panels = DASHBOARD["panels"]
    for p in panels:
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        for t in p["targets"]:
            assert "$instance" in t["expr"], (p["title"], t["expr"])  # every panel follows the instance picked
            assert set(re.findall(r"\$(\w+)", t["expr"])) <= defined, t["expr"]
    used = {name for p in panels for t in p["targets"] for name in re.findall(r"\$(\w+)", t["expr"])}
    assert used == VARIABLES - {"datasource"}
    assert len({p["id"] for p in panels}) == len(panels)
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in panels)


def test_every_metric_is_in_the_reference_and_the_reference_names_only_real_ones() -> None:
    reference = (ROOT / "docs" / "metrics.md").read_text()
    documented = set(re.findall(r"`(reprise_\w+)`", reference))
    registered = {f.name + ("_total" if f.type == "counter" else "") for f in REGISTRY.collect()
                  if f.name.startswith("reprise_")}
    assert registered - documented == set(), "not in docs/metrics.md"
    assert documented - registered == set(), "in docs/metrics.md but not registered"
