"""``make demo``: a local Kafka, the engine and the example Greeter, with real invocations.

Starts ``reprise dev`` (which provisions and starts the local Kafka broker), serves
``examples/greeter/app.py`` with hypercorn (h2c, as Restate does), registers it, invokes it over the
ingress, prints every request and answer, then stops everything and exits 0 (non-zero on failure).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INGRESS, ADMIN, SERVICE = "http://127.0.0.1:8080", "http://127.0.0.1:9070", "http://127.0.0.1:9080"


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


def main() -> int:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    print("starting reprise dev (local Kafka, processors, ingress :8080, admin :9070) ...", flush=True)
    engine = subprocess.Popen([sys.executable, "-m", "engine.cli", "dev"], cwd=ROOT, env=env,
                              start_new_session=True)
    service = subprocess.Popen([sys.executable, "-m", "hypercorn", "examples.greeter.app:app",
                                "--bind", "127.0.0.1:9080"], cwd=ROOT, env=env, start_new_session=True)
    ok = False
    try:
        wait_for(INGRESS + "/restate/health", engine, 300)
        show("POST", ADMIN + "/deployments", {"uri": SERVICE})
        checks = [
            (show("POST", INGRESS + "/Greeter/greet", "Ada")[0] == 200),
            (show("POST", INGRESS + "/Greeter/twice", "Grace")[0] == 200),
            (show("POST", INGRESS + "/Greeter/greet/send", "Linus")[0] == 202),
            (show("POST", INGRESS + "/Greeter/greet", "")[0] == 400),
            (show("POST", INGRESS + "/Nobody/greet", "x")[0] == 404),
        ]
        ok = all(checks)
        print("\ndemo " + ("succeeded" if ok else "FAILED: an answer above was not the expected one"), flush=True)
    finally:
        for proc in (service, engine):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in (service, engine):
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
