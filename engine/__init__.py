"""Reprise's engine: configuration, the CLI, the Kafka and HTTP/2 adapters, the service protocol."""

from engine import native

native.activate()  # before any compiled module is imported (engine/native.py)
