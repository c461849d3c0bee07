"""Outbox order under a failed delivery, against the real broker: an invocation sends five one-way
calls to one key, and the first entry's delivery fails (REPRISE_FAULT_FAIL_AT, engine/faults.py:
not produced, reported failed a moment later, as if Kafka refused its batch). Entries behind it
must not reach the receiving partition first, or its high-water dedup drops the first one when it
is re-sent: a call lost (partitions/leader/outbox_lanes.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import Engine, Service, call_json, post
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka


def _value(eng: Engine, key: str) -> int:
    return json.loads(post(f"{eng.ingress}/Counter/{key}/get", None)[1])


def test_entries_behind_a_failed_one_do_not_overtake_it(kafka_bootstrap: str, namespace: str, tmp_path: Path,
                                                         service: Service) -> None:
    eng = Engine(kafka_bootstrap, namespace, tmp_path / "engine",
                 env={"REPRISE_FAULT_FAIL_AT": "outbox-produce:1"})
    eng.start()
    try:
        eng.register(service.uri)
        assert call_json(eng, "/Caller/fan_out", {"key": "lane", "n": 5}) == (200, 5)
        wait_until(lambda: "injected fault" in eng.output(), 60, "the injected failure")
        try:
            wait_until(lambda: _value(eng, "lane") == 5, 60, "every call to run")
        except AssertionError:
            raise AssertionError(f"calls lost: the counter is at {_value(eng, 'lane')} of 5") from None
    finally:
        eng.kill()
