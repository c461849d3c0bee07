"""deploy/native.py: the compiled apply path is used only while it matches its source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reprise.deploy import native

ROOT = Path(__file__).resolve().parent.parent.parent


def _without_switch() -> dict[str, str]:
    """This environment without REPRISE_NATIVE (``make test`` also runs the unit tests with it at 0)."""
    return {k: v for k, v in os.environ.items() if k != native.ENV_SWITCH}


def _import_in_subprocess(root: Path, modules: tuple[str, ...], code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter with a CompiledFinder over ``root`` installed first."""
    script = (f"import sys; sys.path.insert(0, {str(root)!r}); from pathlib import Path; "
              "from reprise.deploy import native; "
              f"sys.meta_path.insert(0, native.CompiledFinder.for_sources(Path({str(root)!r}), {modules!r})); {code}")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                         env={**_without_switch(), "PYTHONPATH": str(ROOT), **env}, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_module_runs_compiled_until_its_source_changes(tmp_path: Path) -> None:
    pkg = tmp_path / "nativepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "calc.py").write_text("def answer():\n    return 41 + 1\n")
    modules = ("nativepkg.calc",)
    show = "import nativepkg.calc as m; print(m.__file__, m.answer())"

    assert native.status(modules, tmp_path) == {"nativepkg.calc": "missing"}
    assert native.build(modules, tmp_path) == ["nativepkg.calc"]
    assert native.status(modules, tmp_path) == {"nativepkg.calc": "compiled"}
    assert native.build(modules, tmp_path) == []  # up to date: nothing compiled again
    path, answer = _import_in_subprocess(tmp_path, modules, show).split()
    assert Path(path).parent == native.build_dir(tmp_path) / "nativepkg" and answer == "42"

    # Switched off: the source
    path, _ = _import_in_subprocess(tmp_path, modules, show, REPRISE_NATIVE="0").split()
    assert path == str(pkg / "calc.py")

    # Edited after the build: the source, never the stale build
    (pkg / "calc.py").write_text("def answer():\n    return 43\n")
    assert native.status(modules, tmp_path) == {"nativepkg.calc": "stale"}
    path, answer = _import_in_subprocess(tmp_path, modules, show).split()
    assert path == str(pkg / "calc.py") and answer == "43"

    # Rebuilt: compiled again, from the new source
    assert native.build(modules, tmp_path) == ["nativepkg.calc"]
    path, answer = _import_in_subprocess(tmp_path, modules, show).split()
    assert path.endswith(".so") and answer == "43"
    manifest = json.loads((native.build_dir(tmp_path) / "manifest.json").read_text())
    assert set(manifest["modules"]) == {"nativepkg.calc"}


def test_the_engine_imports_exactly_what_is_compiled_from_current_sources() -> None:
    """Each apply-path module comes from the build when its status is ``compiled``, else from its
    source. ``make test`` builds first and sets REPRISE_EXPECT_NATIVE=1: then all must be compiled."""
    states = native.status()
    code = ("import importlib, json; from reprise.deploy import native; native.activate(); "
            "print(json.dumps({m: importlib.import_module(m).__file__ "
            f"for m in {native.MODULES!r}}}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env=_without_switch())
    assert out.returncode == 0, out.stderr
    files = json.loads(out.stdout)
    for module, state in states.items():
        if state == "compiled":
            assert Path(files[module]).resolve().is_relative_to(native.build_dir().resolve()), module
        else:
            assert Path(files[module]).resolve() == native.source_of(module).resolve(), module
    if os.environ.get("REPRISE_EXPECT_NATIVE") == "1":
        assert set(states.values()) == {"compiled"}, states


@pytest.mark.parametrize("module", native.MODULES)
def test_every_compiled_module_has_a_source(module: str) -> None:
    assert native.source_of(module).is_file()
    assert native.source_of(module).name != "__init__.py"  # a compiled package would hide its submodules
