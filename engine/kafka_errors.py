"""Kafka errors said out loud, once: errors in place of records, and broker outages.

librdkafka hands some failures to the application as messages whose ``error()`` is set rather than
as exceptions: an ACL that denies a consumer group or a topic (``GROUP_AUTHORIZATION_FAILED``,
``TOPIC_AUTHORIZATION_FAILED``), a topic that does not exist. Skipped in silence, they leave a
process that answers its health checks and does nothing: a processor that never gets a partition,
a commands router that routes no command. Each kind is logged as an error, at most once a minute.

A broker that cannot be reached is another matter: every client of the process (producers, a
consumer per partition, the registry's, the replies') logs each failed connect and reports each
transport error, ~100 lines a second with the broker down. Those are folded into one outage: a
WARNING when it starts, one every ``OUTAGE_INTERVAL_S`` while it lasts with its duration so far,
and an INFO when no connection has failed for ``OUTAGE_QUIET_S`` with its total duration.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import KafkaError

log = logging.getLogger("reprise")
INTERVAL_S = 60.0
AUTHORIZATION = frozenset({KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
                           KafkaError.CLUSTER_AUTHORIZATION_FAILED})
# Codes that say "the broker is not there", not "this request is wrong": they feed the outage.
TRANSPORT = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE,
                       KafkaError._TIMED_OUT, KafkaError._MSG_TIMED_OUT, KafkaError.NETWORK_EXCEPTION})
OUTAGE_INTERVAL_S = 30.0
# librdkafka retries a connection at most every reconnect.backoff.max.ms (10 s by default): quieter
# than that for longer, every client it has is connected again.
OUTAGE_QUIET_S = 12.0
# A progress line says the connections are still failing: only within this long of the latest failure
# (the ticks come every second), never in the quiet that may be the outage's end.
OUTAGE_RECENT_S = 2.0
_last_logged: dict[int, float] = {}  # error code -> when it was last logged (monotonic)


class Outage:
    """Connection failures folded into one outage, with the times given (monotonic s) so a test can
    drive it with a fake clock. ``failed`` on every failure, ``tick`` about once a second."""

    def __init__(self, logger: logging.Logger = log, interval_s: float = OUTAGE_INTERVAL_S,
                 quiet_s: float = OUTAGE_QUIET_S) -> None:
        self._log, self._interval, self._quiet = logger, interval_s, quiet_s
        self._lock = threading.Lock()
        self.since: float | None = None  # when the outage started; None: no outage
        self._last_failure = 0.0
        self._last_logged = 0.0
        self._detail = ""

    def failed(self, detail: str, now: float) -> bool:
        """A connection failed (``detail``: what librdkafka said). True if this started an outage."""
        with self._lock:
            self._last_failure, self._detail = now, detail
            if self.since is not None:
                return False
            self.since = self._last_logged = now
        self._log.warning("Kafka connections failing: %s (logged again every %.0f s while it lasts)",
                          detail, self._interval)
        return True

    def tick(self, now: float) -> bool:
        """Log the outage's progress or its end; False once it has ended (or there is none)."""
        with self._lock:
            since = self.since
            if since is None:
                return False
            if now - self._last_failure >= self._quiet:
                self.since = None
                ended = True
            elif now - self._last_logged >= self._interval and now - self._last_failure <= OUTAGE_RECENT_S:
                self._last_logged = now
                ended = False
            else:
                return True
        if ended:
            self._log.info("Kafka connections healthy again: they failed for %.0f s (from the first failure to the "
                           "last)", self._last_failure - since)
            return False
        self._log.warning("Kafka connections failing for %.0f s: %s", now - since, self._detail)
        return True


class OutageWatch:
    """The process's outage, ticked by a daemon thread while one lasts."""

    def __init__(self, outage: Outage, clock: Callable[[], float] = time.monotonic) -> None:
        self.outage, self._clock = outage, clock

    def failed(self, detail: str) -> None:
        if self.outage.failed(detail, self._clock()):
            threading.Thread(target=self._watch, name="kafka-outage", daemon=True).start()

    def _watch(self) -> None:
        while self.outage.tick(self._clock()):
            time.sleep(1.0)


outage = OutageWatch(Outage())


def report(err: KafkaError, now: float | None = None) -> None:
    """Log ``err`` unless one of its code was logged within the last minute (``now``: monotonic s);
    a transport error counts toward the outage instead."""
    code = err.code()
    if code in TRANSPORT:
        outage.failed(f"{err.name()}: {err.str()}")
        return
    now = time.monotonic() if now is None else now
    last = _last_logged.get(code)
    if last is not None and now - last < INTERVAL_S:
        return
    _last_logged[code] = now
    hint = " (the principal's ACLs: docs/kafka.md)" if code in AUTHORIZATION else ""
    log.error("Kafka error %s: %s%s", err.name(), err.str(), hint)


def client_error(err: KafkaError) -> None:
    """A client's ``error_cb``: a transport error counts toward the outage, any other is logged
    (librdkafka's own default, but through the once-a-minute limit)."""
    if err.code() in TRANSPORT:
        outage.failed(f"{err.name()}: {err.str()}")
    else:
        report(err)


class ConnectFailures(logging.Filter):
    """On librdkafka's logger: a failed connect or a dropped connection (facility FAIL) counts toward
    the outage instead of being a line of its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("FAIL "):
            return True
        outage.failed(message.rsplit("]: ", 1)[-1])
        return False
