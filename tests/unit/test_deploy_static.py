"""The image, compose and Kubernetes files would run, checked without a Docker daemon or a cluster: every
file, command, flag, endpoint and environment variable they name exists in the code, their images and
versions agree, and their volumes hold the directories the engine and Kafka write."""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from reprise.deploy import healthcheck
from reprise.deploy.cli import parser
from reprise.deploy.kafka.local import KAFKA_VERSION
from reprise.engine.config import Config
from reprise.ingress.health import add_health_routes

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
# Kafka versions each Strimzi release supports (Strimzi's release notes): the operator must run the one named
STRIMZI_KAFKA = {
    "0.45.0": {"3.8.0", "3.8.1", "3.9.0"},
    "0.46.0": {"3.9.0", "4.0.0"},
    "0.48.0": {"4.0.0", "4.1.0"},
    "0.49.0": {"4.0.0", "4.0.1", "4.1.0", "4.1.1"},
}
KAFKA_IMAGE_LOG_DIR = "/tmp/kraft-combined-logs"  # where apache/kafka writes its log unless KAFKA_LOG_DIRS says


# ---- what the files say -------------------------------------------------------------------------------

def dockerfile(path: Path = DEPLOY / "Dockerfile") -> list[tuple[str, str]]:
    """(instruction, arguments) per instruction, continuation lines joined, comments dropped."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1].strip()) for ln in text.splitlines() if ln.strip()]


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for ins in instructions:
        if ins[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def exec_form(args: str) -> list[str]:
    return yaml.safe_load(args) if args.startswith("[") else shlex.split(args)


def image_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins, args in stages(instructions)[-1]:
        if ins == "ENV":
            env.update(kv.split("=", 1) for kv in shlex.split(args))
    return env


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = path.split("/")
    ignored = False
    for p in patterns:
        negate, pat = p.startswith("!"), p.lstrip("!")
        if any(fnmatch.fnmatchcase("/".join(parts[:i]), pat) for i in range(1, len(parts) + 1)):
            ignored = not negate
    return ignored


def ignore_patterns() -> list[str]:
    return [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def k8s_docs(folder: Path = K8S) -> list[dict[str, Any]]:
    return [d for f in sorted(folder.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Workload name -> its pod spec (Deployments, StatefulSets, Jobs)."""
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs
            if d["kind"] in ("Deployment", "StatefulSet", "Job")}


def reprise_image(image: str) -> bool:
    return image.split(":")[0].rsplit("/", 1)[-1] == "reprise"


# ---- what the code has --------------------------------------------------------------------------------

def engine_env() -> set[str]:
    """Every environment variable the engine reads: Config's fields, the retry policy's, and the names
    the sources spell out."""
    names = {f"REPRISE_{f.name.upper()}" for f in fields(Config)}
    names |= {f"REPRISE_RETRY_{n.upper()}" for n in ("initial_interval_ms", "max_interval_ms", "max_attempts")}
    for folder in ("engine", "partitions", "ingress", "schemas", "deploy"):
        for src in (REPO / folder).rglob("*.py"):
            names |= set(re.findall(r"\"(REPRISE_[A-Z0-9_]*[A-Z0-9])\"", src.read_text()))
    return names


def served_paths() -> set[str]:
    """The health paths an admin port serves."""
    app = web.Application()
    add_health_routes(app, object())  # type: ignore[arg-type] - the routes only, never called
    return {r.resource.canonical for r in app.router.routes() if r.resource is not None}


def cli_accepts(argv: list[str]) -> bool:
    try:
        parser().parse_args(argv)
    except SystemExit:
        return False
    return True


def console_scripts() -> set[str]:
    return set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])


# ---- the image ----------------------------------------------------------------------------------------

def test_the_image_copies_what_exists_and_builds_the_wheel_from_all_it_needs() -> None:
    instructions, ignore = dockerfile(), ignore_patterns()
    wheel_stage, runtime = stages(instructions)[0], stages(instructions)[-1]
    copied: set[str] = set()
    for ins, args in instructions:
        if ins == "COPY" and not args.startswith("--from"):
            *sources, _ = shlex.split(args)
            for s in sources:
                assert (REPO / s).exists(), f"COPY {s}: no such file"
                assert not dockerignored(s, ignore), f"COPY {s}: excluded by .dockerignore"
                copied.add(s)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    needed = {"pyproject.toml", "setup.py", project["project"]["readme"],
              *project["tool"]["setuptools"]["package-dir"].values()}
    in_wheel_stage = {s for ins, args in wheel_stage if ins == "COPY" for s in shlex.split(args)[:-1]}
    assert needed <= in_wheel_stage, needed - in_wheel_stage
    assert any(ins == "RUN" and "pip wheel" in args for ins, args in wheel_stage)
    assert any(ins == "COPY" and args.startswith("--from=") for ins, args in runtime)  # the runtime takes the wheel
    assert not any(ins == "ENV" and "PYTHONPATH" in args for ins, args in runtime)  # runs the installed package
    # nothing the build makes locally goes into the context
    for local in ("engine/ids.cpython-311-x86_64-linux-gnu.so", "reprise/native-build.json", ".venv/bin/python",
                  ".reprise/data/x", "build/lib/x.py", "tests/unit/test_native.py"):
        assert dockerignored(local, ignore), local
    assert any(ins == "RUN" and "REPRISE_EXPECT_NATIVE=1 reprise native" in args for ins, args in runtime)


def test_the_image_runs_as_a_user_that_owns_its_data_and_checks_its_liveness() -> None:
    runtime = stages(dockerfile())[-1]
    user = [args for ins, args in runtime if ins == "USER"]
    assert user and user[-1].split(":")[0].isdigit() and user[-1].split(":")[0] != "0", user
    made = " ".join(args for ins, args in runtime if ins == "RUN")
    env = image_env(dockerfile())
    for folder in (env["REPRISE_HOME"], "/snapshots"):
        assert re.search(rf"mkdir -p [^&]*{folder}\b", made) and re.search(rf"chown [^&]*{folder}\b", made), folder
    check = [exec_form(args.split("CMD", 1)[1].strip()) for ins, args in runtime if ins == "HEALTHCHECK"]
    assert check, "no HEALTHCHECK"
    python, dash_m, module, what = check[0]
    assert (python, dash_m, module) == ("python", "-m", healthcheck.__name__)
    assert what in healthcheck.CHECKS and f"/health/{what}" in served_paths() and what == "live"
    entry = [exec_form(args) for ins, args in runtime if ins == "ENTRYPOINT"]
    assert entry and entry[-1][0] in console_scripts()
    assert set(env) <= engine_env() | {"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}, set(env) - engine_env()


# ---- compose ------------------------------------------------------------------------------------------

def test_compose_runs_real_commands_on_the_image_it_builds() -> None:
    c = compose()
    for name, svc in c["services"].items():
        build = svc.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file(), name
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name}: {source}"
            else:
                assert source in c["volumes"], f"{name}: volume {source} is not declared"
        if reprise_image(svc.get("image", "")):
            assert svc["image"] == c["services"]["processor-1"]["image"], name  # one image
            if "entrypoint" in svc:
                assert svc["entrypoint"][0] == "hypercorn", name  # the examples extra installs it
                module = svc["entrypoint"][1].split(":")[0]
                assert (REPO / (module.replace(".", "/") + ".py")).is_file(), module
                assert svc.get("healthcheck") == {"disable": True}, f"{name}: no admin port to check"
            else:
                assert cli_accepts(svc["command"]), f"{name}: reprise {' '.join(svc['command'])}"
    text = (DEPLOY / "compose.yaml").read_text()
    used = set(re.findall(r"\bREPRISE_[A-Z0-9_]+", text))
    assert used <= engine_env(), used - engine_env()
    for path in re.findall(r"/health/\w+", text):
        assert path in served_paths(), path


def test_compose_keeps_kafkas_log_and_the_processors_state_on_volumes() -> None:
    c = compose()
    kafka = c["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"  # the Kafka `reprise kafka` runs
    log_dir = kafka["environment"].get("KAFKA_LOG_DIRS", KAFKA_IMAGE_LOG_DIR)
    assert log_dir in {m.split(":")[1] for m in kafka["volumes"]}, log_dir
    home = image_env(dockerfile())["REPRISE_HOME"]
    processors = {n: s for n, s in c["services"].items() if s.get("command", [""])[0] in ("processor", "dev")}
    assert len(processors) >= 2
    shared = set()
    for name, svc in processors.items():
        env = svc["environment"]
        mounts = dict(reversed(m.split(":")[:2]) for m in svc["volumes"])  # path -> volume
        assert env.get("REPRISE_HOME", home) in mounts, f"{name}: REPRISE_HOME is not on a volume"
        assert env["REPRISE_SNAPSHOT_DIR"] in mounts, f"{name}: snapshots are not on a volume"
        shared.add(mounts[env["REPRISE_SNAPSHOT_DIR"]])
    assert len(shared) == 1, "every processor must see the same snapshots"
    assert len({s["environment"]["REPRISE_INSTANCE_ID"] for s in processors.values()}) == len(processors)


def test_prometheus_scrapes_the_compose_services_admin_ports() -> None:
    c, prom = compose(), yaml.safe_load((DEPLOY / "observe" / "prometheus.yml").read_text())
    targets = []
    for job in prom["scrape_configs"]:
        assert set(job) <= {"job_name", "static_configs", "metrics_path", "scrape_interval"}, job["job_name"]
        targets += [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets
    for target in targets:
        host, port = target.split(":")
        assert host in c["services"], host
        assert c["services"][host]["environment"]["REPRISE_ADMIN_PORT"] == port, target


# ---- Kubernetes ---------------------------------------------------------------------------------------

def test_kubernetes_runs_real_commands_with_probes_the_engine_serves() -> None:
    docs = k8s_docs()
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for f in kustomization["resources"]:
        assert (K8S / f).is_file(), f
    images = kustomization["images"]
    compose_image = compose()["services"]["processor-1"]["image"]
    assert [f"{i['newName']}:{i['newTag']}" for i in images] == [compose_image]
    for name, pod in pod_specs(docs).items():
        for c in pod["containers"]:
            assert c["image"] == f"{images[0]['name']}:{images[0]['newTag']}", name
            if "command" in c:
                assert c["command"][0] == "hypercorn" and (REPO / "examples/greeter/app.py").is_file(), name
                continue
            assert cli_accepts(c["args"]), f"{name}: reprise {' '.join(c['args'])}"
            env = {e["name"]: e for e in c.get("env", [])}
            assert set(env) - expansion_helpers(c) <= engine_env(), set(env) - engine_env()
            if c["args"][0] not in ("processor", "ingress"):
                continue
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                get = c[probe]["httpGet"]
                assert get["path"] in served_paths(), f"{name} {probe}: {get['path']}"
                assert str(ports[get["port"]]) == env["REPRISE_ADMIN_PORT"]["value"], f"{name} {probe}"


def expansion_helpers(container: dict[str, Any]) -> set[str]:
    """Variables the engine does not read, there only to be expanded (``$(NAME)``) into a later one's value."""
    values = " ".join(str(e.get("value", "")) for e in container.get("env", []))
    return {e["name"] for e in container.get("env", []) if f"$({e['name']})" in values}


def expanded(container: dict[str, Any], name: str) -> str:
    """An environment variable's value as the kubelet expands it: ``$(VAR)`` of a variable defined
    before it, from the downward API, becomes ``<fieldPath>``; anything else stays as written."""
    seen: dict[str, str] = {}
    for e in container.get("env", []):
        if e["name"] == name:
            return re.sub(r"\$\((\w+)\)", lambda m: seen.get(m.group(1), m.group(0)), e["value"])
        field = e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        seen[e["name"]] = f"<{field}>" if field else str(e.get("value", ""))
    raise AssertionError(f"{name} is not set")


def test_processors_advertise_an_admin_url_the_other_processes_reach() -> None:
    """A processor's advertised admin URL (docs/introspection.md, "Cluster-wide") is how any process
    reaches the owner of a partition: in Kubernetes its pod's IP (a pod's host name resolves nowhere
    else), in compose its service name; with its admin port either way."""
    processors = 0
    for name, pod in pod_specs(k8s_docs()).items():
        for c in pod["containers"]:
            if c.get("args", [""])[0] != "processor":
                continue
            processors += 1
            port = next(e["value"] for e in c["env"] if e["name"] == "REPRISE_ADMIN_PORT")
            assert expanded(c, "REPRISE_ADMIN_ADVERTISED_URL") == f"http://<status.podIP>:{port}", name
    assert processors
    services = compose()["services"]
    for name, svc in services.items():
        if svc.get("command", [""])[0] == "processor":
            env = svc["environment"]
            assert env.get("REPRISE_ADMIN_ADVERTISED_URL") == f"http://{name}:{env['REPRISE_ADMIN_PORT']}", name


def test_kubernetes_pods_are_locked_down_spread_and_budgeted() -> None:
    docs = k8s_docs()
    uid = int(next(a for i, a in stages(dockerfile())[-1] if i == "USER").split(":")[0])
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        name, pod = d["metadata"]["name"], d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid, name
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], name
            assert sc["readOnlyRootFilesystem"] is True, name
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            if d["kind"] != "Job":
                assert "/tmp" in mounts, f"{name}: a read-only root needs a writable /tmp"
        if d["kind"] == "Job":
            continue
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert any(all(labels.get(k) == v for k, v in b["spec"]["selector"]["matchLabels"].items())
                   for b in budgets), f"{name}: no PodDisruptionBudget"
        terms = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert any(t["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()
                   for t in terms), f"{name}: its anti-affinity does not select its own pods"


def test_kubernetes_secrets_and_volumes_hold_what_the_processes_need() -> None:
    pods = pod_specs(k8s_docs())
    for name, pod in pods.items():
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            env = {e["name"]: e for e in c.get("env", [])}
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            for secret in ("REPRISE_ADMIN_TOKEN",):
                if secret in env:
                    assert "secretKeyRef" in env[secret].get("valueFrom", {}), f"{name}: {secret} not from a Secret"
            if "REPRISE_KAFKA_CONFIG" in env:  # the Kafka credentials: a file of a Secret
                folder = str(Path(env["REPRISE_KAFKA_CONFIG"]["value"]).parent)
                assert "secret" in volumes[mounts[folder]], f"{name}: Kafka credentials not from a Secret"
            if c.get("args", [""])[0] in ("processor", "ingress"):
                assert "REPRISE_KAFKA_CONFIG" in env, f"{name}: the listener authenticates its clients"
            if c.get("args", [""])[0] == "processor":
                assert env["REPRISE_HOME"]["value"] in mounts, name
                assert env["REPRISE_SNAPSHOT_DIR"]["value"] in mounts, name
    processors = next(d for d in k8s_docs() if d["kind"] == "StatefulSet")
    claims = {t["metadata"]["name"] for t in processors["spec"]["volumeClaimTemplates"]}
    home = next(e["value"] for e in processors["spec"]["template"]["spec"]["containers"][0]["env"]
                if e["name"] == "REPRISE_HOME")
    mount = next(m for m in processors["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
                 if m["mountPath"] == home)
    assert mount["name"] in claims, "each processor's RocksDB on its own persistent claim"
    kafka = next(d for d in k8s_docs() if d["kind"] == "Kafka")["spec"]["kafka"]
    assert all(lst.get("authentication") for lst in kafka["listeners"]), "a listener without authentication"


def strimzi_versions() -> set[str]:
    text = (K8S / "kafka.yaml").read_text() + (K8S / "README.md").read_text()
    found = re.findall(r"strimzi[^\n]*?(?<![\d.])(0\.\d+(?:\.\d+)?)\b", text, re.IGNORECASE)  # Strimzi is 0.x
    return {v if v.count(".") == 2 else v + ".0" for v in found}


def test_kafka_and_strimzi_versions_agree() -> None:
    kafka = next(d for d in k8s_docs() if d["kind"] == "Kafka")["spec"]["kafka"]
    assert kafka["version"] == KAFKA_VERSION
    assert kafka["metadataVersion"].startswith(".".join(KAFKA_VERSION.split(".")[:2]) + "-")
    named = strimzi_versions()
    assert named, "the manifests name no Strimzi version"
    for v in named:
        assert KAFKA_VERSION in STRIMZI_KAFKA.get(v, set()), f"Strimzi {v} does not run Kafka {KAFKA_VERSION}"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (its kustomize) is not installed")
def test_the_storage_classes_are_kustomize_parameters(tmp_path: Path) -> None:
    """Every claim (processors' stores, the snapshots, Kafka's log) takes its class from the parameters."""
    copy = shutil.copytree(K8S, tmp_path / "k8s")
    params = (copy / "kustomization.yaml").read_text()
    params = re.sub(r"storageClass=\S+", "storageClass=rwo-under-test", params)
    params = re.sub(r"sharedStorageClass=\S+", "sharedStorageClass=rwx-under-test", params)
    (copy / "kustomization.yaml").write_text(params)
    out = subprocess.run(["kubectl", "kustomize", str(copy)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert not [d for d in docs if d["kind"] == "ConfigMap"], "the parameters must not be applied"
    classes = {}
    for d in docs:
        if d["kind"] == "PersistentVolumeClaim":
            classes[d["metadata"]["name"]] = (d["spec"].get("storageClassName"), d["spec"]["accessModes"])
        for t in d["spec"].get("volumeClaimTemplates", []) if d["kind"] == "StatefulSet" else []:
            classes[t["metadata"]["name"]] = (t["spec"].get("storageClassName"), t["spec"]["accessModes"])
        if d["kind"] == "KafkaNodePool":
            for v in d["spec"]["storage"]["volumes"]:
                classes[f"kafka-{v['id']}"] = (v.get("class"), ["ReadWriteOnce"])
    assert len(classes) >= 3
    for name, (cls, modes) in classes.items():
        assert cls == ("rwx-under-test" if "ReadWriteMany" in modes else "rwo-under-test"), name


def test_the_image_health_check_passes_only_while_the_admin_port_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    import http.server
    import threading

    class Live(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            self.send_response(200 if self.path == "/health/live" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Live)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("REPRISE_ADMIN_PORT", str(server.server_address[1]))
        assert healthcheck.main(["live"]) == 0
        assert healthcheck.main(["ready"]) == 1  # a 503
    finally:
        server.shutdown()
        server.server_close()
    assert healthcheck.main(["live"]) == 1  # nothing listens
    assert healthcheck.main(["nonsense"]) == 2
