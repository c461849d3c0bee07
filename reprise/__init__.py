"""Reprise: durable execution on Apache Kafka, speaking the Restate service protocol.

Installed, the sub-packages (``reprise.engine``, ``reprise.partitions``, ``reprise.ingress``,
``reprise.schemas``, ``reprise.deploy``) sit beside this file. In a source checkout they are the
repository's top-level folders (pyproject.toml maps them), so this package also looks there.
"""

from __future__ import annotations

import os as _os

__version__ = "0.1.0"

_here = _os.path.dirname(_os.path.abspath(__file__))
if not _os.path.isdir(_os.path.join(_here, "engine")):
    __path__.append(_os.path.dirname(_here))  # noqa: F821 - a package's __path__
