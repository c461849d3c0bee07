"""Optional compiled build of the apply path: the same Python modules, compiled by Cython.

Why: apply() runs per record in pure Python, and the processor's core rate decides how fast a
partition replays its log (rebuild, a new leader catching up) and what one apply thread sustains.
Compiled unchanged by Cython (no type declarations, ``annotation_typing`` off, so the semantics stay
Python's), the modules below apply ~35% more records per second (``tests/bench/apply_loop.py``;
docs/benchmarks.md, "The compiled apply path"). Only the apply path is compiled: compiling the event loop's
modules as well (ingress, invoker, HTTP/2) measured slower under load, not faster.

The sources stay the truth. ``reprise native build`` (``make native``, which ``make test``,
``demo`` and ``bench`` run) compiles into ``.reprise/native/<interpreter>/`` and records each source's
SHA-256. ``activate()``, called by the entry points (the ``reprise`` command, the test suite's conftest, the
benchmarks) before they import the engine, installs an import hook that loads a
compiled module only while its recorded hash matches the source: an edited module is imported from
its ``.py`` until the next build, never stale. ``REPRISE_NATIVE=0`` imports everything from source.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The modules a record's apply() runs through: decode, apply, tables, the stored rows' codec, ids. Not
# package ``__init__`` modules: a compiled package would look for its uncompiled submodules in the build.
MODULES = (
    "reprise.engine.ids",
    "reprise.engine.partitioning",
    "reprise.engine.protocol.framing",
    "reprise.engine.protocol.journal",
    "reprise.engine.protocol.messages",
    "reprise.partitions.core.actions",
    "reprise.partitions.core.apply.admin_command",
    "reprise.partitions.core.apply.attach",
    "reprise.partitions.core.apply.call_completed",
    "reprise.partitions.core.apply.invoke",
    "reprise.partitions.core.apply.invoker_effects",
    "reprise.partitions.core.apply.leadership",
    "reprise.partitions.core.apply.retention_sweep",
    "reprise.partitions.core.apply.signal",
    "reprise.partitions.core.apply.timer_fired",
    "reprise.partitions.core.apply.validation",
    "reprise.partitions.core.apply.validation_fast",
    "reprise.partitions.core.lifecycle",
    "reprise.partitions.core.promises",
    "reprise.partitions.core.status",
    "reprise.partitions.core.tables",
    "reprise.partitions.core.transaction",
    "reprise.partitions.state.changelog",
    "reprise.partitions.state.log_apply",
    "reprise.partitions.state.rebuild",
    "reprise.partitions.state.rocks_store",
    "reprise.schemas.avro_compiled",
    "reprise.schemas.invoke",
)
DIRECTIVES = {"language_level": 3, "annotation_typing": False, "binding": True}
ENV_SWITCH = "REPRISE_NATIVE"  # "0": import every module from its source


def build_dir(root: Path = ROOT) -> Path:
    return root / ".reprise" / "native" / sys.implementation.cache_tag


def source_of(module: str, root: Path = ROOT) -> Path:
    """A module's source under ``root``: the folder that holds the sub-packages of ``reprise`` (the
    repository in a checkout, the installed ``reprise`` package in a wheel)."""
    parts = module.split(".")
    if parts[0] == "reprise":
        parts = parts[1:]
    return root.joinpath(*parts).with_suffix(".py")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1") != "0"


def status(modules: tuple[str, ...] = MODULES, root: Path = ROOT) -> dict[str, str]:
    """Each module's state: ``compiled`` (built from its current source), ``stale`` or ``missing``."""
    return _states(_manifest(build_dir(root)).get("modules", {}), modules, root)


def _states(built: dict[str, Any], modules: tuple[str, ...], root: Path) -> dict[str, str]:
    out = build_dir(root)
    states = {}
    for m in modules:
        entry = built.get(m)
        if entry is None or not (out / entry["file"]).exists():
            states[m] = "missing"
        else:
            states[m] = "compiled" if entry["sha256"] == _sha256(source_of(m, root)) else "stale"
    return states


def build(modules: tuple[str, ...] = MODULES, root: Path = ROOT) -> list[str]:
    """Compile the modules that are missing or stale; returns those compiled. Raises if Cython or the
    C compiler fails (a build that silently fell back would hide that the engine runs uncompiled)."""
    from Cython.Build import cythonize  # build-time only: the engine runs without Cython installed
    from setuptools import Distribution, Extension

    out = build_dir(root)
    todo = [m for m, s in status(modules, root).items() if s != "compiled"]
    if not todo:
        return []
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        # Copies of the sources, so that Cython's C files and objects stay out of the source tree
        copies = {m: Path(tmp, "src", source_of(m, root).relative_to(root)) for m in todo}
        for m, copy in copies.items():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source_of(m, root), copy)
        # -w: the C that Cython generates trips gcc's -Warray-bounds on CPython's own inline helpers
        exts = [Extension(m, [str(copy)], extra_compile_args=["-w"]) for m, copy in copies.items()]
        dist = Distribution({"ext_modules": cythonize(exts, compiler_directives=DIRECTIVES, quiet=True,
                                                      nthreads=os.cpu_count() or 1)})
        cmd: Any = dist.get_command_obj("build_ext")
        cmd.build_lib, cmd.build_temp, cmd.parallel = str(Path(tmp, "lib")), str(Path(tmp, "obj")), os.cpu_count()
        cmd.ensure_finalized()
        cmd.run()
        manifest = _manifest(out)
        built = manifest.setdefault("modules", {})
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        for m, copy in copies.items():
            target = out / (m.replace(".", "/") + suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(Path(tmp, "lib", m.replace(".", "/") + suffix), target)
            # The hash of the source that was compiled (the copy), not of the file as it is now
            built[m] = {"file": str(target.relative_to(out)), "sha256": _sha256(copy)}
        Path(tmp, "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(Path(tmp, "manifest.json"), out / "manifest.json")  # never a half-written manifest
    return todo


class CompiledFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled module built from a module's current source, else leaves it to the next finder."""

    def __init__(self, compiled: dict[str, Path]) -> None:
        self.compiled = compiled  # module -> its extension file

    @classmethod
    def for_sources(cls, root: Path = ROOT, modules: tuple[str, ...] = MODULES) -> CompiledFinder:
        """The modules of ``modules`` whose build matches their source now (none if ``REPRISE_NATIVE=0``)."""
        if not enabled():
            return cls({})
        out = build_dir(root)
        built = _manifest(out).get("modules", {})  # read once: every process start reads it
        return cls({m: out / built[m]["file"] for m, state in _states(built, modules, root).items()
                    if state == "compiled"})

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        found = self.compiled.get(fullname)
        if found is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, found, loader=importlib.machinery.ExtensionFileLoader(fullname, str(found)))


_finder: CompiledFinder | None = None


def activate() -> list[str]:
    """Install the import hook once; returns the modules it loads compiled."""
    global _finder
    if _finder is None:
        _finder = CompiledFinder.for_sources()
        sys.meta_path.insert(0, _finder)
    return sorted(_finder.compiled)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    if command == "build":
        if not enabled():
            print(f"native: not built ({ENV_SWITCH}=0: every module runs from its source)")
            return 0
        logging.disable(logging.INFO)  # setuptools logs every compiler command at INFO
        done = build()
        print(f"native: compiled {len(done)} module(s) into {build_dir()}" if done else "native: up to date")
        return 0
    if command == "status":
        for m, s in status().items():
            print(f"{s:9s} {m}")
        return 0
    print("usage: reprise native build|status", file=sys.stderr)
    return 2
