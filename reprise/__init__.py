"""Reprise: durable execution on Apache Kafka, speaking the Restate service protocol.

The sub-packages are the repository's top-level folders: ``reprise.engine`` is ``engine/``,
``reprise.partitions`` is ``partitions/`` and so on. In a checkout this folder links to them; the
wheel maps them into ``reprise/`` (pyproject.toml's package-dir).
"""

__version__ = "0.1.0"
