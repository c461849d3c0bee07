"""Test your restate-sdk handlers against a real engine: ``reprise.testing`` (docs/testing.md).

``EmbeddedEngine`` runs ``reprise dev`` with your app embedded; its ``client`` calls, sends, attaches
and reads state; ``crash_after``/``restart``, ``advance`` and ``journal`` do what a test cannot do
with Restate's own tooling. The pytest plugin (``reprise.testing.plugin``) gives the fixtures.

The names are imported on first use: the plugin, loaded into every pytest run where reprise is
installed, imports this package and must not pull in an HTTP or Kafka client with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reprise.testing.client import Client, InvocationFailed
    from reprise.testing.engine import EmbeddedEngine, EngineCrashed

__all__ = ["Client", "EmbeddedEngine", "EngineCrashed", "InvocationFailed"]
_HOME = {"Client": "client", "InvocationFailed": "client", "EmbeddedEngine": "engine", "EngineCrashed": "engine"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'reprise.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f"reprise.testing.{_HOME[name]}"), name)
