"""The deploy/ files agree with the code: they parse, name real commands, metrics and topic settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import reprise.deploy.runtime  # noqa: F401 - registers every metric the dashboard may name
import reprise.partitions.metrics  # noqa: F401 - registers the metrics the dashboard must name
from reprise.deploy.cli import parser
from reprise.engine.config import Config
from reprise.engine.kafka import topic_specs

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def subcommands() -> set[str]:
    return set(next(a for a in parser()._actions if a.dest == "command").choices)  # noqa: SLF001


def test_every_yaml_and_json_file_parses() -> None:
    files = list(DEPLOY.rglob("*.yaml")) + list(DEPLOY.rglob("*.yml"))
    assert len(files) >= 10
    for f in files:
        assert yaml_docs(f), f
    json.loads((DEPLOY / "observe" / "grafana-dashboard.json").read_text())


def test_compose_and_kubernetes_run_real_reprise_commands() -> None:
    compose = yaml_docs(DEPLOY / "compose.yaml")[0]["services"]
    commands = [s["command"][0] for s in compose.values() if "command" in s and not s.get("entrypoint")]
    for doc in (d for f in (DEPLOY / "k8s").glob("*.yaml") for d in yaml_docs(f)):
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        commands += [c["args"][0] for c in spec.get("containers", []) if "args" in c]
    assert {"processor", "ingress", "topics", "register"} <= set(commands)
    assert set(commands) <= subcommands()
    env_names = {f"REPRISE_{f.upper()}" for f in Config.__dataclass_fields__}
    env_names.add("REPRISE_BOOTSTRAP")
    used = set(re.findall(r"REPRISE_[A-Z_]+", (DEPLOY / "compose.yaml").read_text()
                          + "".join(f.read_text() for f in (DEPLOY / "k8s").glob("*.yaml"))))
    assert used <= env_names, used - env_names


def test_the_dashboard_names_only_metrics_that_exist() -> None:
    dashboard = json.loads((DEPLOY / "observe" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    named = {m for e in exprs for m in re.findall(r"\breprise_[a-z0-9_]+", e)}
    known = set()
    for m in REGISTRY.collect():  # a labelled metric without children yet has no samples: name its series
        known |= {m.name, f"{m.name}_total", f"{m.name}_bucket", f"{m.name}_count", f"{m.name}_sum"}
    assert named and named <= known, named - known
    for wanted in ("reprise_invocations", "reprise_apply_batch_seconds_bucket", "reprise_consumer_lag_records",
                   "reprise_attempt_seconds_bucket", "reprise_inbox_depth", "reprise_snapshot_age_seconds"):
        assert wanted in named, wanted


def test_strimzi_topics_match_what_reprise_creates() -> None:
    declared = {d["spec"]["topicName"]: d["spec"] for d in yaml_docs(DEPLOY / "k8s" / "topics.yaml")}
    specs = topic_specs(Config(namespace="reprise", replication_factor=3))
    assert set(declared) == {t.topic for t in specs}
    for t in specs:
        d = declared[t.topic]
        assert (d["partitions"], d["replicas"]) == (t.num_partitions, t.replication_factor), t.topic
        assert {k: str(v) for k, v in d["config"].items()} == t.config, t.topic


def test_the_cli_says_its_version(capsys: pytest.CaptureFixture[str]) -> None:
    import reprise

    with pytest.raises(SystemExit) as done:
        parser().parse_args(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"reprise {reprise.__version__}"
