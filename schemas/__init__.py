"""The Avro schemas of log records and stored rows, and their codec."""

import engine  # noqa: F401 - installs engine.native's import hook before any module of this package loads
