"""Every deployed process that calls or serves the admin API gets its token (docs/security.md)."""

from __future__ import annotations

from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NEEDS_TOKEN = {"processor", "ingress", "register"}


def test_kubernetes_processes_read_the_token_from_a_secret() -> None:
    seen = set()
    for f in (DEPLOY / "k8s").glob("*.yaml"):
        for doc in (d for d in yaml.safe_load_all(f.read_text()) if d):
            for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                if c.get("args", [None])[0] in NEEDS_TOKEN:
                    env = {e["name"]: e for e in c.get("env", [])}
                    assert env["REPRISE_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "reprise-admin", f
                    seen.add(c["args"][0])
    assert seen == NEEDS_TOKEN


def test_compose_processes_get_the_token() -> None:
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    seen = set()
    for svc in services.values():
        if svc.get("command", [None])[0] in NEEDS_TOKEN:
            assert "REPRISE_ADMIN_TOKEN" in svc["environment"], svc["command"]
            seen.add(svc["command"][0])
    assert seen == NEEDS_TOKEN
