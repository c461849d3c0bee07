"""The test suite is an entry point like the ``reprise`` command: it switches on the compiled apply
path (deploy/native.py) before any test imports the engine, so ``make test`` runs what users run."""

from reprise.deploy import native

native.activate()
