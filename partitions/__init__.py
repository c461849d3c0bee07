"""Partition processors: apply(), the stores, the invoker and the leader's other actions."""

import engine  # noqa: F401 - installs engine.native's import hook before any module of this package loads
