"""The compiled apply path: the same Python modules, compiled by Cython when the package is built.

Why: apply() runs per record in pure Python, and the processor's core rate decides how fast a
partition replays its log (rebuild, a new leader catching up) and what one apply thread sustains.
Compiled unchanged by Cython (no type declarations, ``annotation_typing`` off, so the semantics stay
Python's), the modules below apply ~35% more records per second (``tests/bench/apply_loop.py``;
docs/benchmarks.md, "The compiled apply path"). Only the apply path is compiled: compiling the event loop's
modules as well (ingress, invoker, HTTP/2) measured slower under load, not faster.

Nothing compiles at run time. Building the package compiles them (``setup.py``'s build_ext,
``deploy/native_build.py``): a wheel carries each extension beside its source, an editable install
or ``make native`` puts them beside the sources of the checkout, and where Cython or a C compiler is
missing the build succeeds without them. The build records each compiled source's SHA-256 in
``native-build.json`` in the ``reprise`` package folder. ``activate()``, called by the entry points
(the ``reprise`` command, the test suite, the benchmarks) before they import the engine, installs an
import hook that decides for each module: its extension while the recorded hash matches the source
(an edited module is imported from its ``.py`` until the next build, never stale), else its source.
``REPRISE_NATIVE=0`` imports every module from source; ``REPRISE_EXPECT_NATIVE=1`` makes
``activate()`` fail when a module would not load compiled. ``reprise native`` reports what is loaded.

This module uses the standard library only: the build imports it before any dependency is installed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

# The folder of the ``reprise`` package, as imported (in a checkout its sub-packages are links to the
# repository's folders, and the extensions sit beside the sources there).
ROOT = Path(__file__).absolute().parent.parent
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
EXPECT_SWITCH = "REPRISE_EXPECT_NATIVE"  # "1": activate() raises unless every module loads compiled
MANIFEST = "native-build.json"  # in the top package's folder: {cache tag: {module: SHA-256 of its source}}
EXTENSION_SUFFIX: str = sysconfig.get_config_var("EXT_SUFFIX") or ".so"

COMPILED = "compiled"
SWITCHED_OFF, NOT_BUILT, SOURCE_CHANGED = f"pure ({ENV_SWITCH}=0)", "pure (not compiled)", "pure (source changed)"


class NativeNotLoaded(RuntimeError):
    """REPRISE_EXPECT_NATIVE=1 and some apply-path module would be imported from its source."""


def source_of(module: str, root: Path = ROOT) -> Path:
    """A module's source under ``root``, the folder of its top-level package."""
    return root.joinpath(*module.split(".")[1:]).with_suffix(".py")


def extension_of(module: str, root: Path = ROOT) -> Path:
    """Where the build puts a module's compiled extension: beside its source."""
    source = source_of(module, root)
    return source.with_name(source.stem + EXTENSION_SUFFIX)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(folder: Path) -> dict[str, str]:
    """The source hashes the build recorded for this interpreter's extensions in ``folder``."""
    try:
        return json.loads((folder / MANIFEST).read_text()).get(sys.implementation.cache_tag, {})
    except (OSError, ValueError, AttributeError):
        return {}


def write_manifest(folder: Path, built: dict[str, str]) -> None:
    """Record ``built`` (module -> source hash) for this interpreter, keeping what other builds recorded."""
    try:
        everything = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        everything = {}
    everything[sys.implementation.cache_tag] = built
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(everything, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, folder / MANIFEST)  # never a half-written manifest


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1") != "0"


def plan(modules: tuple[str, ...] = MODULES, root: Path = ROOT) -> dict[str, str]:
    """What each module will be imported as: ``compiled``, or pure and why."""
    if not enabled():
        return dict.fromkeys(modules, SWITCHED_OFF)
    recorded = read_manifest(root)
    states = {}
    for m in modules:
        if m not in recorded or not extension_of(m, root).is_file():
            states[m] = NOT_BUILT
        else:
            states[m] = COMPILED if recorded[m] == sha256(source_of(m, root)) else SOURCE_CHANGED
    return states


class NativeFinder(importlib.abc.MetaPathFinder):
    """Imports each apply-path module from the file ``plan()`` chose. It must decide for the pure ones
    too: Python's own finder would prefer an extension beside the source, stale or switched off."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files  # module -> its extension or its source

    @classmethod
    def planned(cls, modules: tuple[str, ...] = MODULES, root: Path = ROOT) -> tuple[NativeFinder, dict[str, str]]:
        states = plan(modules, root)
        return cls({m: extension_of(m, root) if s == COMPILED else source_of(m, root)
                    for m, s in states.items()}), states

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        found = self.files.get(fullname)
        if found is None:
            return None
        if found.suffix == ".py":
            return importlib.util.spec_from_file_location(fullname, found)
        return importlib.util.spec_from_file_location(
            fullname, found, loader=importlib.machinery.ExtensionFileLoader(fullname, str(found)))


_finder: NativeFinder | None = None
_states: dict[str, str] = {}


def activate(modules: tuple[str, ...] = MODULES, root: Path = ROOT) -> list[str]:
    """Install the import hook once; returns the modules it loads compiled. Raises NativeNotLoaded
    under REPRISE_EXPECT_NATIVE=1 if any would load from source (unless REPRISE_NATIVE=0)."""
    global _finder
    if _finder is None:
        finder, states = NativeFinder.planned(modules, root)
        pure = {m: s for m, s in states.items() if s not in (COMPILED, SWITCHED_OFF)}
        if pure and os.environ.get(EXPECT_SWITCH) == "1":
            raise NativeNotLoaded(f"{EXPECT_SWITCH}=1 but {len(pure)} apply-path module(s) would run from source "
                                  f"({', '.join(f'{m}: {s}' for m, s in sorted(pure.items()))}); build the "
                                  f"package with Cython and a C compiler (make native)")
        _finder = finder
        _states.update(states)
        sys.meta_path.insert(0, _finder)
    return sorted(m for m, s in _states.items() if s == COMPILED)


def loaded(modules: tuple[str, ...] = MODULES) -> dict[str, str]:
    """Each module as this process imported it: ``compiled`` (an extension) or pure and why."""
    activate()
    out = {}
    for m in modules:
        spec = importlib.import_module(m).__spec__  # None only for __main__, which is none of these
        compiled = spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)
        out[m] = COMPILED if compiled else _states.get(m, NOT_BUILT)
    return out


def main(argv: list[str]) -> int:
    """``reprise native``: each apply-path module, compiled or pure, as this installation loads it."""
    states = loaded()
    for m, s in states.items():
        print(f"{s:24s} {m}")
    compiled = sum(s == COMPILED for s in states.values())
    print(f"native: {compiled} of {len(states)} apply-path modules compiled")
    return 0
