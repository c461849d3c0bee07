"""The compiled apply path: built with the package where it can be (deploy/native_build.py), loaded only
while it matches its source, pure Python otherwise (deploy/native.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from reprise.deploy import native

ROOT = Path(__file__).resolve().parent.parent.parent
MODULES = ("nativepkg.calc", "nativepkg.other")
SETUP = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from pathlib import Path; from setuptools import setup; "
         "from reprise.deploy.native_build import COMMANDS, extensions; "
         f"setup(name='nativepkg', version='1', packages=['nativepkg'], "
         f"ext_modules=extensions({MODULES!r}, Path('nativepkg')), cmdclass=COMMANDS, script_args=sys.argv[1:])")


def _without_switch() -> dict[str, str]:
    """This environment without REPRISE_NATIVE (``make test`` also runs the unit tests with it at 0)."""
    return {k: v for k, v in os.environ.items() if k not in (native.ENV_SWITCH, native.EXPECT_SWITCH)}


def _build(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``build_ext --inplace`` of the package in ``project``, as ``make native`` runs it for Reprise."""
    return _setup(project, ["-q", "build_ext", "--inplace"], **env)


def _setup(project: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """``setup.py <args>`` of the package in ``project``, with Reprise's build commands."""
    return subprocess.run([sys.executable, "-c", SETUP, *args], capture_output=True, text=True, cwd=project,
                          timeout=300, env={**_without_switch(), "CFLAGS": "-O0", **env})  # unoptimised: faster


def _run(project: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter after ``activate()`` over the package in ``project``."""
    script = (f"import sys; sys.path[:0] = [{str(project)!r}, {str(ROOT)!r}]; from pathlib import Path; "
              "from reprise.deploy import native; "
              f"native.activate({MODULES!r}, Path({str(project / 'nativepkg')!r})); {code}")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=project, timeout=60,
                          env={**_without_switch(), **env})


def _show(project: Path, **env: str) -> tuple[str, str]:
    """The file ``nativepkg.calc`` was imported from, and its answer."""
    out = _run(project, "import nativepkg.calc as m; print(m.__file__, m.answer())", **env)
    assert out.returncode == 0, out.stderr
    path, answer = out.stdout.split()
    return path, answer


@pytest.fixture
def project(tmp_path: Path) -> Path:
    pkg = tmp_path / "nativepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "calc.py").write_text("def answer():\n    return 41 + 1\n")
    (pkg / "other.py").write_text("def answer():\n    return 7\n")
    return tmp_path


def test_a_module_runs_compiled_until_its_source_changes(project: Path) -> None:
    pkg = project / "nativepkg"
    assert _show(project) == (str(pkg / "calc.py"), "42")  # not built: its source
    built = _build(project)
    assert built.returncode == 0, built.stderr
    for m in MODULES:
        assert native.extension_of(m, pkg).is_file(), m  # beside its source
    assert set(json.loads((pkg / native.MANIFEST).read_text())[sys.implementation.cache_tag]) == set(MODULES)
    assert _show(project) == (str(native.extension_of("nativepkg.calc", pkg)), "42")
    assert _show(project, REPRISE_NATIVE="0") == (str(pkg / "calc.py"), "42")  # switched off: the source wins

    (pkg / "calc.py").write_text("def answer():\n    return 41 + 2\n")
    assert _show(project) == (str(pkg / "calc.py"), "43")  # edited: never the stale build
    other = native.extension_of("nativepkg.other", pkg).stat().st_mtime_ns
    rebuilt = _build(project)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert _show(project) == (str(native.extension_of("nativepkg.calc", pkg)), "43")
    assert native.extension_of("nativepkg.other", pkg).stat().st_mtime_ns == other  # unchanged: not rebuilt


def test_the_build_succeeds_pure_without_cython_or_a_compiler(project: Path) -> None:
    stub = project / "no-cython" / "Cython"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('no Cython here')\n")
    without_cython = _build(project, PYTHONPATH=str(stub.parent))
    without_compiler = _build(project, CC="false", LDSHARED="false")
    for built, why in ((without_cython, "Cython is not installed"), (without_compiler, "the C compiler failed")):
        assert built.returncode == 0, built.stderr
        assert f"{why}: 2 apply-path module(s) stay pure Python" in built.stderr, built.stderr
    assert not list((project / "nativepkg").glob("*" + native.EXTENSION_SUFFIX))
    assert _show(project) == (str(project / "nativepkg" / "calc.py"), "42")


def _wheel(project: Path, dist: str, **env: str) -> tuple[str, set[str]]:
    """The wheel ``bdist_wheel`` makes of the package in ``project``: its tag and its files."""
    built = _setup(project, ["-q", "bdist_wheel", "-d", dist], **env)
    assert built.returncode == 0, built.stderr
    [wheel] = (project / dist).glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        return wheel.name.removesuffix(".whl").split("-", 2)[2], set(z.namelist())


def test_a_wheel_without_compiled_modules_is_pure(project: Path) -> None:
    """Without Cython or a compiler the wheel holds sources only: tagged ``py3-none-any``, not for the
    platform it was built on (that a compiled wheel carries its extensions: tests/integration/test_wheel.py)."""
    stub = project / "no-cython" / "Cython"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('no Cython here')\n")
    stale = project / "build" / f"lib.{sysconfig.get_platform()}-{sys.implementation.cache_tag}" / \
        native.extension_of("nativepkg.calc", Path("nativepkg"))  # an earlier build's, left in build/
    for dist, env in (("without-cython", {"PYTHONPATH": str(stub.parent)}),
                      ("without-compiler", {"CC": "false", "LDSHARED": "false"})):
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_bytes(b"not this build's")
        tag, files = _wheel(project, dist, **env)
        assert tag == "py3-none-any", dist  # installs on any interpreter and platform
        assert {"nativepkg/calc.py", "nativepkg/other.py"} <= files, files  # at the root: purelib
        assert not [f for f in files if f.endswith(native.EXTENSION_SUFFIX)], files  # nothing stale packed


def test_a_wheel_built_again_compiles_only_what_changed(project: Path) -> None:
    """A compiled wheel is tagged for its platform and carries each extension and their manifest; built
    again from the same checkout, it reuses the extensions in build/ whose source is unchanged."""
    tag, files = _wheel(project, "first")
    assert tag.split("-")[1:] != ["none", "any"], tag
    extensions = {m: str(native.extension_of(m, Path("nativepkg"))) for m in MODULES}
    assert set(extensions.values()) | {"nativepkg/" + native.MANIFEST} <= files, files
    built = project / "build" / f"lib.{sysconfig.get_platform()}-{sys.implementation.cache_tag}"
    first = {m: (built / f).stat().st_mtime_ns for m, f in extensions.items()}
    (project / "nativepkg" / "calc.py").write_text("def answer():\n    return 41 + 2\n")
    tag_again, files_again = _wheel(project, "again")
    assert (tag_again, files_again) == (tag, files)
    again = {m: (built / f).stat().st_mtime_ns for m, f in extensions.items()}
    assert again["nativepkg.other"] == first["nativepkg.other"]  # unchanged: reused
    assert again["nativepkg.calc"] != first["nativepkg.calc"]  # edited: compiled again
    with zipfile.ZipFile(next((project / "again").glob("*.whl"))) as z:
        recorded = json.loads(z.read("nativepkg/" + native.MANIFEST))[sys.implementation.cache_tag]
    assert recorded == {m: native.sha256(native.source_of(m, project / "nativepkg")) for m in MODULES}


# setup.py run with every runtime dependency of the project unimportable, as in a build environment that
# has only the build requirements (the wheel test builds without one, to save installing them each run).
WITHOUT_DEPENDENCIES = """
import importlib.metadata as md, re, runpy, sys, tomllib
deps = {re.split(r"[ \\[<>=!~;]", d, maxsplit=1)[0].lower().replace("_", "-")
        for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]}
blocked = {top for top, dists in md.packages_distributions().items()
           if any(d.lower().replace("_", "-") in deps for d in dists)}
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name}: a runtime dependency, absent when the package is built")
sys.meta_path.insert(0, Blocker())
print(sorted(blocked), file=sys.stderr)
sys.argv = ["setup.py", "--name"]
runpy.run_path("setup.py", run_name="__main__")
"""


def test_the_build_step_needs_no_runtime_dependency() -> None:
    out = subprocess.run([sys.executable, "-c", WITHOUT_DEPENDENCIES], capture_output=True, text=True, cwd=ROOT,
                         timeout=120, env=_without_switch())
    assert out.returncode == 0, out.stderr[-3000:]
    assert "confluent_kafka" in out.stderr and "rocksdict" in out.stderr  # the blocker knows the dependencies
    assert out.stdout.strip().splitlines()[-1] == "reprise-engine"


def test_expecting_compiled_modules_fails_loudly_when_they_are_not(project: Path) -> None:
    failed = _run(project, "print('started')", REPRISE_EXPECT_NATIVE="1")
    assert failed.returncode != 0 and "started" not in failed.stdout
    assert "NativeNotLoaded" in failed.stderr and "nativepkg.calc: pure (not compiled)" in failed.stderr
    assert _run(project, "print('started')", REPRISE_EXPECT_NATIVE="1", REPRISE_NATIVE="0").stdout == "started\n"


def test_the_engine_imports_exactly_what_is_compiled_from_current_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each apply-path module comes from its extension when ``plan()`` says ``compiled``, else from its
    source. ``make test`` builds first and sets REPRISE_EXPECT_NATIVE=1: then all must be compiled."""
    monkeypatch.delenv(native.ENV_SWITCH, raising=False)
    states = native.plan()
    code = ("import importlib, json; from reprise.deploy import native; native.activate(); "
            "print(json.dumps({m: importlib.import_module(m).__file__ "
            f"for m in {native.MODULES!r}}}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env=_without_switch())
    assert out.returncode == 0, out.stderr
    files = json.loads(out.stdout)
    for module, state in states.items():
        expected = native.extension_of(module) if state == native.COMPILED else native.source_of(module)
        assert Path(files[module]).resolve() == expected.resolve(), module
    if os.environ.get(native.EXPECT_SWITCH) == "1":
        assert set(states.values()) == {native.COMPILED}, states


@pytest.mark.parametrize("module", native.MODULES)
def test_every_compiled_module_has_a_source(module: str) -> None:
    assert native.source_of(module).is_file()
    assert native.source_of(module).name != "__init__.py"  # a compiled package would hide its submodules
