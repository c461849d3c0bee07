"""Restate's own CLI (``@restatedev/restate``, from npm) for the tests: installed once into ``.reprise/restate-cli``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.harness import ROOT

CLI_VERSION = "1.7.12"
CLI_HOME = ROOT / ".reprise" / "restate-cli"


def install_cli() -> Path | None:
    """The CLI's executable, installed by npm once into the cache; None where npm cannot install it."""
    exe = CLI_HOME / "node_modules" / ".bin" / "restate"
    marker = CLI_HOME / f"installed-{CLI_VERSION}"
    if exe.exists() and marker.exists():
        return exe
    npm = shutil.which("npm")
    if npm is None:
        return None
    CLI_HOME.mkdir(parents=True, exist_ok=True)
    (CLI_HOME / "package.json").write_text('{"name": "reprise-restate-cli", "private": true}\n')
    try:
        done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "-s", f"@restatedev/restate@{CLI_VERSION}"],
                              cwd=CLI_HOME, capture_output=True, timeout=300)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0 or not exe.exists():
        return None
    marker.write_text("")
    return exe


def run_cli(exe: Path, admin: str, ingress: str, home: Path, token: str | None, *args: str) -> tuple[int, str]:
    """``restate <args>`` against one engine, non-interactively: (exit code, stdout and stderr)."""
    env = {**os.environ, "RESTATE_ADMIN_URL": admin, "RESTATE_INGRESS_URL": ingress,
           "RESTATE_CLI_CONFIG_HOME": str(home), "NO_COLOR": "1", "CI": "1"}
    if token:
        env["RESTATE_AUTH_TOKEN"] = token
    done = subprocess.run([str(exe), "-y", *args], env=env, capture_output=True, timeout=120)
    return done.returncode, done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
