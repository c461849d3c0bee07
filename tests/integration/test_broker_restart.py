"""A broker that restarts: sends and calls during the outage get 503; invocations in flight complete after it;
the outage is logged as a few lines (when it starts, while it lasts, when it ends), not a line per failure."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reprise.deploy.kafka.local import LocalKafka
from tests.harness import Background, Engine, Service, call_json, count, post
from tests.integration.test_crash_recovery import wait_until

pytestmark = pytest.mark.kafka


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    kafka = LocalKafka(home=tmp_path / "broker", port=19192, controller_port=19193, heap="256m")
    kafka.start()
    yield kafka
    kafka.stop()


def test_broker_restart(own_broker: LocalKafka, tmp_path: Path, service: Service, effects: Path) -> None:
    eng = Engine(own_broker.bootstrap, "restart", tmp_path / "engine", env={"REPRISE_PRODUCE_TIMEOUT_MS": "3000"})
    eng.start()
    try:
        eng.register(service.uri)
        assert call_json(eng, "/Steps/three", "before") == (200, "before:ABC")
        sleeping = Background(call_json, eng, "/Steps/sleepy", {"name": "br", "ms": 3000}, 120)
        wait_until(lambda: count(effects, "br.before") == 1, 30, "the step before the sleep")
        before_outage = len(eng.output())
        own_broker.stop()
        status, body = post(eng.ingress + "/Steps/three/send", b'"during"', {"content-type": "application/json"},
                            timeout=60)
        assert status == 503 and "log unavailable" in json.loads(body)["message"]
        # a call (which awaits its reply, not the ack) fails the same way
        status, body = post(eng.ingress + "/Steps/three", b'"during"', {"content-type": "application/json"},
                            timeout=60)
        assert status == 503 and "log unavailable" in json.loads(body)["message"]
        time.sleep(1.0)
        own_broker.start()
        assert sleeping.result() == (200, "slept")
        assert count(effects, "br.before") == 1 and count(effects, "br.after") == 1
        assert call_json(eng, "/Steps/three", "after") == (200, "after:ABC")

        def outage_lines() -> list[str]:
            lines = eng.output()[before_outage:].splitlines()
            return [line for line in lines if " WARNING " in line or " ERROR " in line]

        assert any("Kafka connections failing" in line for line in outage_lines()), outage_lines()[:20]
        assert len(outage_lines()) <= 12, "\n".join(outage_lines()[:20])  # unfolded: a line per failed connect
        wait_until(lambda: "Kafka connections healthy again" in eng.output(), 60, "the end of the outage logged")
        assert len(outage_lines()) <= 12, "\n".join(outage_lines())
    finally:
        eng.kill()
