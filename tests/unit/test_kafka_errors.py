"""Kafka errors are logged without flooding: errors in place of records once a minute per kind, and
a broker outage as one warning when it starts, one per interval while it lasts, one line when it ends."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError

from reprise.engine import kafka_errors
from reprise.engine.kafka_errors import Outage


def test_each_kind_is_logged_once_a_minute_with_a_hint_for_acls(caplog: pytest.LogCaptureFixture,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_errors, "_last_logged", {})
    denied, unknown = KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED), KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
    with caplog.at_level(logging.ERROR, logger="reprise"):
        kafka_errors.report(denied, now=1000.0)
        kafka_errors.report(denied, now=1001.0)
        kafka_errors.report(unknown, now=1002.0)
        kafka_errors.report(denied, now=1000.0 + kafka_errors.INTERVAL_S)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages
    assert "GROUP_AUTHORIZATION_FAILED" in messages[0] and "docs/kafka.md" in messages[0]
    assert "UNKNOWN_TOPIC_OR_PART" in messages[1] and "docs/kafka.md" not in messages[1]


def _records(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records]


def test_an_outage_logs_once_at_start_once_per_interval_and_once_at_its_end(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage(logging.getLogger("reprise.test_outage"), interval_s=30.0, quiet_s=12.0)
    with caplog.at_level(logging.INFO, logger="reprise.test_outage"):
        t = 1000.0
        while t < 1095.0:  # 95 s of failures, 100 a second, ticked every second
            for i in range(100):
                outage.failed("Connect to ipv4#127.0.0.1:9 failed: Connection refused", t + i / 100)
            assert outage.tick(t + 1.0)
            t += 1.0
        while outage.tick(t):  # the broker is back: no more failures
            t += 1.0
    logged = _records(caplog)
    assert [level for level, _ in logged] == ["WARNING", "WARNING", "WARNING", "WARNING", "INFO"], logged
    assert "Connection refused" in logged[0][1]
    assert [m.split(" for ")[1].split(" s")[0] for _, m in logged[1:4]] == ["30", "60", "90"], logged
    assert "they failed for 95 s" in logged[4][1], logged  # from the first failure to the last
    assert outage.since is None and not outage.tick(t + 100)


def test_a_new_outage_after_one_ended_is_logged_again(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage(logging.getLogger("reprise.test_outage"), interval_s=30.0, quiet_s=12.0)
    with caplog.at_level(logging.INFO, logger="reprise.test_outage"):
        assert outage.failed("down", 0.0)
        assert not outage.failed("down", 5.0)
        assert not outage.failed("down", 25.0)
        assert outage.tick(31.0)  # quiet since 25: not "still failing", though an interval has passed
        assert not outage.tick(37.0)  # quiet for 12 s: ended
        assert outage.failed("down again", 100.0)
    logged = _records(caplog)
    assert [level for level, _ in logged] == ["WARNING", "INFO", "WARNING"], logged
    assert "they failed for 25 s" in logged[1][1]


def test_transport_errors_and_failed_connects_feed_the_outage_and_other_errors_are_logged(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    failures: list[str] = []
    monkeypatch.setattr(kafka_errors.outage, "failed", failures.append)
    monkeypatch.setattr(kafka_errors, "_last_logged", {})
    rdkafka = logging.getLogger("rdkafka.test_outage")
    rdkafka.addFilter(kafka_errors.ConnectFailures())
    with caplog.at_level(logging.INFO):
        kafka_errors.client_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
        kafka_errors.report(KafkaError(KafkaError._TRANSPORT, "Broker transport failure"))
        rdkafka.error("FAIL [rdkafka#consumer-4] [thrd:b:9/bootstrap]: b:9/bootstrap: Connect to b:9 failed")
        rdkafka.warning("CONFWARN [rdkafka#producer-1] [thrd:app]: a setting is ignored")
        kafka_errors.client_error(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "denied"))
    assert len(failures) == 3 and failures[2] == "b:9/bootstrap: Connect to b:9 failed", failures
    logged = [m for _, m in _records(caplog)]
    assert len(logged) == 2 and "CONFWARN" in logged[0] and "TOPIC_AUTHORIZATION_FAILED" in logged[1], logged
