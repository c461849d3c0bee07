"""The ``reprise`` command's exit codes, and the one-line message each failure ends with.

Operators script the CLI: a failure is one line on stderr (``reprise: ...``) and an exit code that
says what kind of failure it was (docs/cli.md lists them). A traceback is left for what is a bug.
"""

from __future__ import annotations

import errno
import sys

OK = 0
FAILED = 1  # the command ran and was refused or failed (the admin API's 4xx/5xx, a bad file, ...)
USAGE = 2  # bad arguments or configuration (argparse's own code for a usage error)
KAFKA_UNREACHABLE = 3  # no Kafka broker answered at the bootstrap servers
ADMIN_UNREACHABLE = 4  # nothing answered at the admin API's address
NOT_FOUND = 5  # no such service, invocation, subscription, deployment or key
STORE_LOCKED = 6  # a partition store is open in another process (a running processor): stop it first
PORT_IN_USE = 7  # a port the command listens on is taken

DOCUMENTED = {OK: "success", FAILED: "the command failed", USAGE: "usage or configuration error",
              KAFKA_UNREACHABLE: "Kafka unreachable", ADMIN_UNREACHABLE: "admin API unreachable",
              NOT_FOUND: "not found", STORE_LOCKED: "partition store locked by a running process",
              PORT_IN_USE: "port in use"}


class CliError(Exception):
    """A failure the CLI reports as one line and an exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def for_http_status(status: int) -> int:
    """The exit code of an admin API answer (0: the API was unreachable)."""
    if status == 0:
        return ADMIN_UNREACHABLE
    if status == 404:
        return NOT_FOUND
    return OK if status < 300 else FAILED


def for_exception(e: BaseException) -> CliError | None:
    """The CliError an exception of a command stands for; None: a bug, left to its traceback."""
    from confluent_kafka import KafkaError, KafkaException

    from reprise.engine.kafka_properties import KafkaConfigError
    from reprise.partitions.state.rocks_store import StoreLocked

    if isinstance(e, CliError):
        return e
    if isinstance(e, KafkaConfigError):
        return CliError(USAGE, str(e))
    if isinstance(e, StoreLocked):
        return CliError(STORE_LOCKED, str(e))
    if isinstance(e, KafkaException):
        err = e.args[0] if e.args else None
        text = err.str() if isinstance(err, KafkaError) else str(e)
        return CliError(KAFKA_UNREACHABLE if _transport(err) else FAILED, f"Kafka: {text}")
    if isinstance(e, OSError) and e.errno == errno.EADDRINUSE:
        return CliError(PORT_IN_USE, f"{e.strerror}: another process listens on a port this command needs "
                                     "(choose others with --ingress-port / --admin-port)")
    return None


def _transport(err: object) -> bool:
    from reprise.engine.kafka_errors import TRANSPORT

    code = getattr(err, "code", None)
    return callable(code) and code() in TRANSPORT


def fail(e: CliError) -> int:
    print(f"reprise: {e}", file=sys.stderr)
    return e.code
