"""Errors a consumer returns in place of records are logged, each kind at most once a minute."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError

from reprise.engine import consumer_errors


def test_each_kind_is_logged_once_a_minute_with_a_hint_for_acls(caplog: pytest.LogCaptureFixture,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer_errors, "_last_logged", {})
    denied, unknown = KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED), KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
    with caplog.at_level(logging.ERROR, logger="reprise"):
        consumer_errors.report(denied, now=1000.0)
        consumer_errors.report(denied, now=1001.0)
        consumer_errors.report(unknown, now=1002.0)
        consumer_errors.report(denied, now=1000.0 + consumer_errors.INTERVAL_S)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages
    assert "GROUP_AUTHORIZATION_FAILED" in messages[0] and "docs/kafka.md" in messages[0]
    assert "UNKNOWN_TOPIC_OR_PART" in messages[1] and "docs/kafka.md" not in messages[1]
