"""``make demo``: a local Kafka, the engine and the example Greeter, with real invocations.

Starts ``reprise dev`` (which provisions and starts the local Kafka broker), serves
``examples/greeter/app.py`` and ``examples/objects/app.py`` with hypercorn (h2c, as Restate does),
registers them, invokes them over the
ingress, prints every request and answer, then stops everything and exits 0 (non-zero on failure).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INGRESS, ADMIN = "http://127.0.0.1:8080", "http://127.0.0.1:9070"
SERVICES = {"examples.greeter.app:app": "127.0.0.1:9080", "examples.objects.app:app": "127.0.0.1:9081",
            "examples.workflows.app:app": "127.0.0.1:9082"}


def request(method: str, url: str, body: object = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def show(method: str, url: str, body: object = None) -> tuple[int, str]:
    print(f"\n> {method} {url}" + (f"  {json.dumps(body)}" if body is not None else ""), flush=True)
    status, text = request(method, url, body)
    print(f"< {status} {text}", flush=True)
    return status, text


def wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"process exited with {proc.returncode} before {url} answered")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.25)
    raise SystemExit(f"{url} did not answer within {timeout:.0f}s")


def wait_for_secret(outbox: Path, timeout: float = 30.0) -> str:
    """The secret link the signup workflow 'emailed' (the example writes emails to a file)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (outbox / "emails").exists() and "secret=" in (outbox / "emails").read_text():
            secret = (outbox / "emails").read_text().split("secret=")[-1].strip()
            print(f"  (the email with the link arrived: secret {secret})", flush=True)
            return secret
        time.sleep(0.1)
    raise SystemExit("the signup email never arrived")


def main() -> int:
    outbox = Path(tempfile.mkdtemp(prefix="reprise-demo-"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "REPRISE_EXAMPLE_OUTBOX": str(outbox)}
    print("starting reprise dev (local Kafka, processors, ingress :8080, admin :9070) ...", flush=True)
    namespace = f"demo{int(time.time())}"  # a fresh log and state each run, so the answers below hold
    engine = subprocess.Popen([sys.executable, "-m", "reprise", "dev", "--namespace", namespace], cwd=ROOT,
                              env=env, start_new_session=True)
    services = [subprocess.Popen([sys.executable, "-m", "hypercorn", app, "--bind", bind], cwd=ROOT, env=env,
                                 start_new_session=True) for app, bind in SERVICES.items()]
    ok = False
    try:
        wait_for(INGRESS + "/restate/health", engine, 300)
        for bind in SERVICES.values():
            show("POST", ADMIN + "/deployments", {"uri": f"http://{bind}"})
        checks = [
            (show("POST", INGRESS + "/Greeter/greet", "Ada")[0] == 200),
            (show("POST", INGRESS + "/Greeter/twice", "Grace")[0] == 200),
            (show("POST", INGRESS + "/Greeter/greet/send", "Linus")[0] == 202),
            (show("POST", INGRESS + "/Greeter/greet", "")[0] == 400),
            (show("POST", INGRESS + "/Nobody/greet", "x")[0] == 404),
            # Virtual Objects: state per key, one exclusive handler at a time per key.
            (show("POST", INGRESS + "/GreeterObject/Mary/greet", "Hello")[0] == 200),
            (show("POST", INGRESS + "/GreeterObject/Mary/greet", "Hi")[0] == 200),
            (show("POST", INGRESS + "/GreeterObject/Mary/getGreetCount")[1] == "2"),
            # The cart/ticket flow: the first cart gets seat 2B, the second does not.
            (show("POST", INGRESS + "/CartObject/alice/addTicket", "seat-2B")[1] == "true"),
            (show("POST", INGRESS + "/CartObject/bob/addTicket", "seat-2B")[1] == "false"),
            (show("POST", INGRESS + "/CartObject/alice/getTickets")[1] == '["seat-2B"]'),
            (show("POST", INGRESS + "/CartObject/bob/getTickets")[1] == "[]"),
            # Workflows: run once per id, wait on a durable promise, a shared handler resolves it.
            (show("POST", INGRESS + "/SignupWorkflow/ada/run/send", {"email": "ada@example.com"})[0] == 202),
            (show("POST", INGRESS + "/SignupWorkflow/ada/run/send", {"email": "ada@example.com"})[0] == 202),
            (show("GET", INGRESS + "/restate/workflow/SignupWorkflow/ada/output")[0] == 470),
            (show("POST", INGRESS + "/SignupWorkflow/ada/click", wait_for_secret(outbox))[0] == 200),
            (show("GET", INGRESS + "/restate/workflow/SignupWorkflow/ada/attach")[1] == "true"),
            (show("POST", INGRESS + "/SubscriptionService/add", {"user": "ada", "items": ["news", "jazz"]})[0]
             == 200),
        ]
        ok = all(checks)
        print("\ndemo " + ("succeeded" if ok else "FAILED: an answer above was not the expected one"), flush=True)
    finally:
        for proc in (*services, engine):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in (*services, engine):
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
