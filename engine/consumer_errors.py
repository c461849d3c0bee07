"""Errors a Kafka consumer returns in place of records, said out loud.

librdkafka hands some failures to the application as messages whose ``error()`` is set rather than
as exceptions: an ACL that denies a consumer group or a topic (``GROUP_AUTHORIZATION_FAILED``,
``TOPIC_AUTHORIZATION_FAILED``), a topic that does not exist. Skipped in silence, they leave a
process that answers its health checks and does nothing: a processor that never gets a partition,
a commands router that routes no command. Each kind is logged as an error, at most once a minute.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError

log = logging.getLogger("reprise")
INTERVAL_S = 60.0
AUTHORIZATION = frozenset({KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
                           KafkaError.CLUSTER_AUTHORIZATION_FAILED})
_last_logged: dict[int, float] = {}  # error code -> when it was last logged (monotonic)


def report(err: KafkaError, now: float | None = None) -> None:
    """Log ``err`` unless one of its code was logged within the last minute (``now``: monotonic s)."""
    code = err.code()
    now = time.monotonic() if now is None else now
    last = _last_logged.get(code)
    if last is not None and now - last < INTERVAL_S:
        return
    _last_logged[code] = now
    hint = " (the principal's ACLs: docs/kafka.md)" if code in AUTHORIZATION else ""
    log.error("Kafka consumer error %s: %s%s", err.name(), err.str(), hint)
