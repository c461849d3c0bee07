"""File operations that leave a store directory whole or absent at every point of a crash.

A crash may stop a process between any two system calls, and a power loss may drop what was
written but not fsynced. Renames are atomic, so every change of a store directory or snapshot file
is prepared under another name, made durable (its files and directory fsynced), then renamed into
place, and the parent directory is fsynced so that the rename itself survives. Deleting a store
renames it aside first: a half-deleted RocksDB under the store's name would fail to open (or worse).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from reprise.engine.faults import crash_point

ASIDE = ".deleting"  # a store directory renamed aside, to be deleted


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make the directory's entries (files created, renamed or removed in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Every file and directory under ``root``, and ``root`` itself."""
    for folder, _, files in os.walk(root):
        for name in files:
            fsync_file(Path(folder) / name)
        fsync_dir(Path(folder))


def remove_dir(path: Path) -> None:
    """Delete a directory so that a crash leaves it whole or gone: renamed aside, then removed."""
    aside = path.with_name(path.name + ASIDE)
    shutil.rmtree(aside, ignore_errors=True)  # what an earlier crash left
    if path.exists():
        os.replace(path, aside)
        fsync_dir(path.parent)
    shutil.rmtree(aside, ignore_errors=True)


def replace_dir(staged: Path, path: Path) -> None:
    """Put the directory ``staged`` (complete) in place of ``path``: a crash leaves the old one, or
    none (between the two renames: the caller's next start builds it again), or the new one; never
    a mix."""
    fsync_tree(staged)
    aside = path.with_name(path.name + ASIDE)
    shutil.rmtree(aside, ignore_errors=True)
    if path.exists():
        os.replace(path, aside)
    crash_point("store.replace")
    os.replace(staged, path)
    fsync_dir(path.parent)
    shutil.rmtree(aside, ignore_errors=True)
