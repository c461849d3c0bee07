"""The built wheel, installed into a fresh virtualenv and run from an empty folder, outside the
repository: ``reprise --version``, ``reprise native`` (the apply path compiled when the wheel was
built, loaded from the wheel), then ``reprise dev`` with an embedded restate-sdk app of the folder's
own, one invocation through its ingress, and a clean stop.

The dependencies come from the suite's own environment (a ``.pth`` file), and so do the build's
(setuptools, Cython): resolving them again from PyPI would take a minute and test pip, not the wheel.
What this proves is the wheel itself: its namespace, its data files (schemas, broker templates, the
admin page), its compiled extensions and its command.

The build reuses the checkout's in-place build (``make native``, which ``make test`` runs first) for
each module whose source it was compiled from, as a second build of a checkout reuses its ``build/``
(deploy/native_build.py): compiling the 28 modules again proves nothing the in-place build did not,
and took most of this test's time. What is not built in place is compiled here, unoptimised
(``CFLAGS=-O0``, several times faster): what is tested is that the wheel carries and loads them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import textwrap
import urllib.request
import zipfile
from pathlib import Path

import pytest

from reprise.deploy import native
from tests.harness import free_port, wait_http

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
APP = textwrap.dedent('''
    import restate

    hello = restate.Service("Hello")

    @hello.handler()
    async def greet(ctx: restate.Context, name: str) -> str:
        return f"hello {name}"

    app = restate.app([hello])
''')


def _source_copy(dest: Path) -> Path:
    """The repository's files (tracked, or new and not ignored), links kept as links."""
    names = subprocess.check_output(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                    cwd=ROOT).decode().split("\0")
    for name in filter(None, names):
        src, dst = ROOT / name, dest / name
        if not src.is_symlink() and not src.is_file():
            continue  # deleted in the working tree
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)
    return dest


def _seed_build(source: Path) -> int:
    """Put the checkout's in-place extensions that match their sources where the wheel's build looks for
    an earlier build of its own (``build/lib.<platform>-<tag>``, with their manifest); how many."""
    current = {m: h for m, h in native.read_manifest(ROOT / "reprise").items()
               if m in native.MODULES and native.extension_of(m, ROOT / "reprise").is_file()
               and native.sha256(native.source_of(m, source / "reprise")) == h}
    if not current:
        return 0
    build_lib = source / "build" / f"lib.{sysconfig.get_platform()}-{sys.implementation.cache_tag}" / "reprise"
    for m in current:
        dest = native.extension_of(m, build_lib)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(native.extension_of(m, ROOT / "reprise"), dest)
    native.write_manifest(build_lib, current)
    return len(current)


@pytest.mark.timeout(900)  # the build compiles the apply path: minutes on a busy machine
def test_the_wheel_installs_and_runs_outside_the_repository(kafka_bootstrap: str, namespace: str,
                                                             tmp_path: Path) -> None:
    dist, venv, empty = tmp_path / "dist", tmp_path / "venv", tmp_path / "empty"
    source = _source_copy(tmp_path / "source")  # no build/ left from an earlier build can leak in
    _seed_build(source)  # but the in-place build's extensions of these very sources are reused
    # With the suite's setuptools and Cython: installing them into an isolated build environment each run
    # cost ~15 s; that the build step needs nothing else is tests/unit/test_native.py's to check
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                            str(dist), str(source)],
                           capture_output=True, text=True, timeout=900, env={**os.environ, "CFLAGS": "-O0"})
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(dist.glob("reprise_engine-*.whl"))
    assert not wheel.name.endswith("-none-any.whl"), wheel.name  # compiled: tagged for this platform
    with zipfile.ZipFile(wheel) as z:  # every apply-path module compiled, beside its source
        names = set(z.namelist())
    expected = {str(native.extension_of(m, Path("reprise"))) for m in native.MODULES}
    assert expected <= names, sorted(expected - names)
    assert "reprise/" + native.MANIFEST in names
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)],
                   check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                                str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    target = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                          text=True).strip())
    (target / "suite_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    empty.mkdir()
    (empty / "hello_app.py").write_text(APP)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "REPRISE_EMBEDDED_APP": "hello_app:app",
           "REPRISE_PARTITIONS": "2", native.EXPECT_SWITCH: "1"}

    version = subprocess.run([str(venv / "bin" / "reprise"), "--version"], cwd=empty, env=env,
                             capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == "reprise 0.1.0", version.stderr

    report = subprocess.run([str(venv / "bin" / "reprise"), "native"], cwd=empty, env=env, capture_output=True,
                            text=True, timeout=60)
    assert report.returncode == 0, report.stderr[-2000:]
    states = dict(reversed(line.rsplit(maxsplit=1)) for line in report.stdout.splitlines()[:-1])
    assert states == dict.fromkeys(native.MODULES, native.COMPILED), report.stdout
    assert report.stdout.splitlines()[-1] == f"native: {len(native.MODULES)} of {len(native.MODULES)} apply-path " \
                                             "modules compiled"

    where = subprocess.check_output([str(python), "-c", "import reprise.engine; print(reprise.engine.__file__)"],
                                    cwd=empty, env=env, text=True).strip()
    assert Path(where).is_relative_to(target), where  # the installed package, not the repository's
    plugins = subprocess.check_output([str(python), "-c", "import importlib.metadata as m, reprise.testing.plugin; "
                                       "print(sorted(e.value for e in m.entry_points(group='pytest11')))"],
                                      cwd=empty, env=env, text=True)
    assert "reprise.testing.plugin" in plugins  # reprise.testing ships in the wheel, its pytest plugin registered

    ingress, admin = free_port(), free_port()
    log = (tmp_path / "dev.log").open("wb")
    dev = subprocess.Popen([str(venv / "bin" / "reprise"), "dev", "--kafka", kafka_bootstrap, "--namespace", namespace,
                            "--home", str(tmp_path / "home"), "--ingress-port", str(ingress), "--admin-port",
                            str(admin)], cwd=empty, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_http(f"http://127.0.0.1:{ingress}/restate/health", 90)
        except TimeoutError:
            raise AssertionError((tmp_path / "dev.log").read_text()[-4000:]) from None
        request = urllib.request.Request(f"http://127.0.0.1:{ingress}/Hello/greet", data=json.dumps("wheel").encode(),
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert json.loads(answer.read()) == "hello wheel"
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ui", timeout=30) as page:  # a data file of the wheel
            assert b"<html" in page.read().lower()
    finally:
        dev.send_signal(signal.SIGTERM)
        stopped = dev.wait(60)
        log.close()
    assert stopped == 0, (tmp_path / "dev.log").read_text()[-4000:]
