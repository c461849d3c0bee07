"""Test your restate-sdk handlers against a real engine: ``reprise.testing`` (docs/testing.md).

``EmbeddedEngine`` runs ``reprise dev`` with your app embedded; its ``client`` calls, sends, attaches
and reads state; ``crash_after``/``restart``, ``advance`` and ``journal`` do what a test cannot do
with Restate's own tooling. The pytest plugin (``reprise.testing.plugin``) gives the fixtures.
"""

from reprise.testing.client import Client, InvocationFailed
from reprise.testing.engine import EmbeddedEngine, EngineCrashed

__all__ = ["Client", "EmbeddedEngine", "EngineCrashed", "InvocationFailed"]
