"""Compiles the apply path when the package is built: ``setup.py``'s build_ext (deploy/native.py says why).

Optional by design: without Cython, or where the C compiler fails, the build still succeeds and says
so, and the modules it could not compile run from their sources; a wheel that carries no compiled
module is then tagged pure (``py3-none-any``), not for the platform it was built on. Each compiled module's source hash
goes to ``native-build.json`` in the top package's folder (the wheel's, or the checkout's for an
in-place build), which is how the installed package knows an extension still matches its source.
Only the modules whose source changed since the last build into the same folder are compiled again: in
place (editable installs, ``make native``), or in ``build/`` when a wheel is built again from a checkout.

Imported by ``setup.py`` before any dependency is installed: standard library and setuptools only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import Extension
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_ext import build_ext

from reprise.deploy import native


def extensions(modules: tuple[str, ...] = native.MODULES, root: Path = Path("reprise")) -> list[Extension]:
    """One optional extension per module, from its ``.py`` under ``root`` (relative to setup.py's folder)."""
    flags = [] if os.name == "nt" else ["-w"]  # Cython's C trips gcc's -Warray-bounds on CPython's own inlines
    return [Extension(m, [str(native.source_of(m, root))], optional=True, extra_compile_args=flags) for m in modules]


class OptionalBuildExt(build_ext):
    """build_ext that Cythonizes the ``.py`` extensions first, and falls back to pure Python without failing."""

    parallel: int | None  # build_ext's options (its stubs are not installed: see pyproject.toml)
    extensions: list[Extension]

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        if not self.extensions:
            return
        build_py: Any = self.get_finalized_command("build_py")
        top = self.extensions[0].name.split(".")[0]
        folder = Path(build_py.get_package_dir(top)) if self.inplace else Path(self.build_lib, top)
        recorded = native.read_manifest(folder)
        hashes = {e.name: native.sha256(Path(e.sources[0])) for e in self.extensions}
        # only what changed since the last build into the same folder (in place, or build/ of a wheel)
        self.extensions = [e for e in self.extensions if recorded.get(e.name) != hashes[e.name]
                           or not self._built_file(build_py, e.name).is_file()]
        if not self.extensions:
            return
        for e in self.extensions:  # a failed build must not leave an older one to be copied in place or packed
            Path(self.build_lib, self.get_ext_filename(e.name)).unlink(missing_ok=True)
        try:
            from Cython.Build import cythonize
        except ImportError:
            self._pure(len(self.extensions), "Cython is not installed")
            self.extensions = []
            return
        try:
            generated = cythonize(self.extensions, compiler_directives=native.DIRECTIVES, quiet=True, force=True,
                                  build_dir=os.path.join(self.build_temp, "cython"), nthreads=os.cpu_count() or 1)
        except Exception as err:  # noqa: BLE001 - any Cython failure leaves the package pure, not unbuildable
            self._pure(len(self.extensions), f"Cython failed: {err}")
            self.extensions = []
            return
        c_sources = {g.name: g.sources for g in generated}
        for e in self.extensions:  # the finalized extensions, now from their C (setuptools keeps state on them)
            e.sources = c_sources[e.name]
        super().run()  # optional extensions: a compiler error is a warning
        built = {e.name for e in self.extensions if Path(self.build_lib, self.get_ext_filename(e.name)).is_file()}
        native.write_manifest(folder, {**recorded, **{m: hashes[m] for m in built}})
        if len(built) < len(self.extensions):
            self._pure(len(self.extensions) - len(built), "the C compiler failed")

    def _built_file(self, build_py: Any, module: str) -> Path:
        """Where this build leaves a module's extension: beside its source in place, else in build_lib."""
        if not self.inplace:
            return Path(self.build_lib, self.get_ext_filename(module))
        package, _, _ = module.rpartition(".")
        return Path(build_py.get_package_dir(package), Path(self.get_ext_filename(module)).name)

    def _pure(self, count: int, why: str) -> None:
        print(f"reprise: {why}: {count} apply-path module(s) stay pure Python (`reprise native` reports "
              f"what is compiled)", file=sys.stderr)


class PlatformWheelWhenCompiled(bdist_wheel):
    """bdist_wheel that tags the wheel for a platform only when it carries a compiled extension.

    setuptools decides a wheel's tag before the build, from the extensions declared; ours are optional,
    so a build without Cython or a compiler makes a wheel of sources alone, which would still be tagged
    ``cp311-cp311-linux_x86_64`` and refused by every other interpreter and platform. Decided after the
    build from what it left to pack, such a wheel is pure: ``py3-none-any``.
    """

    root_is_pure: bool  # bdist_wheel's attribute (its stubs are not installed: see pyproject.toml)

    def run(self) -> None:
        if self.skip_build:
            self._settle_purity()
        super().run()

    def run_command(self, command: str) -> None:
        super().run_command(command)
        if command == "build":
            self._settle_purity()

    def _settle_purity(self) -> None:
        if self.root_is_pure or self.distribution.has_c_libraries():
            return
        built: Any = self.get_finalized_command("build_ext")
        if not any(Path(built.build_lib, built.get_ext_filename(e.name)).is_file()
                   for e in self.distribution.ext_modules or []):
            self.root_is_pure = True
            self.distribution.ext_modules = []  # and installed as such: to purelib, the wheel's root


COMMANDS: dict[str, Any] = {"build_ext": OptionalBuildExt, "bdist_wheel": PlatformWheelWhenCompiled}
"""setup.py's ``cmdclass``."""
