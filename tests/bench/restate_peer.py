"""The real Restate server, for the side-by-side benchmark: installed from npm into
``.reprise/restate-peer`` (pinned version), started on loopback with a fresh data directory,
stopped by its pid. ``python -m tests.bench.restate_peer install|start|stop`` does the same by hand.

Restate listens where Reprise does (ingress 8080, admin 9070): run one engine at a time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

VERSION = "1.7.12"
ROOT = Path(__file__).resolve().parent.parent.parent
HOME = ROOT / ".reprise" / "restate-peer"
SERVER = HOME / "node_modules" / "@restatedev" / "restate-server-linux-x64" / "bin" / "restate-server"
CONFIG = 'bind-ip = "127.0.0.1"\ndisable-telemetry = true\nlog-filter = "warn,restate=warn"\n'


def install() -> None:
    """npm-install the pinned server once (npm must be on PATH)."""
    if SERVER.is_file():
        return
    if shutil.which("npm") is None:
        raise SystemExit("the Restate peer is installed with npm: install Node.js (npm) first")
    HOME.mkdir(parents=True, exist_ok=True)
    if not (HOME / "package.json").exists():
        (HOME / "package.json").write_text('{"name": "reprise-restate-peer", "private": true}\n')
    subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", f"@restatedev/restate-server@{VERSION}"],
                   cwd=HOME, check=True)


def _healthy() -> bool:
    try:
        for url in ("http://127.0.0.1:9070/health", "http://127.0.0.1:8080/restate/health"):
            with urllib.request.urlopen(url, timeout=1):
                pass
        return True
    except OSError:
        return False


def start() -> int:
    """Start the server with a fresh data directory; returns its pid once it is healthy."""
    install()
    shutil.rmtree(HOME / "data", ignore_errors=True)
    (HOME / "restate.toml").write_text(CONFIG)
    with open(HOME / "server.log", "wb") as log:
        proc = subprocess.Popen([str(SERVER), "--config-file", str(HOME / "restate.toml"), "--base-dir",
                                 str(HOME / "data"), "--no-logo"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    (HOME / "server.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"restate-server exited ({proc.returncode}); see {HOME / 'server.log'}")
        if _healthy():
            return proc.pid
        time.sleep(0.1)
    raise RuntimeError(f"restate-server did not become healthy; see {HOME / 'server.log'}")


def stop() -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    try:
        pid = int((HOME / "server.pid").read_text())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "install":
        install()
    elif command == "start":
        print(start())
    elif command == "stop":
        stop()
    else:
        print(__doc__)
        sys.exit(2)
