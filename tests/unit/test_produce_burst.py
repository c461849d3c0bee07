"""engine/produce_burst.py: a loop turn's records reach the producer together, in order, at the turn's end."""

from __future__ import annotations

import asyncio
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from reprise.engine.produce_burst import ProduceBurst


class FakeProducer:
    def __init__(self, refuse: set[bytes] | None = None) -> None:
        self.records: list[tuple[str, int, bytes]] = []
        self.refuse = refuse or set()

    def produce(self, topic: str, **kw: Any) -> None:
        if kw["value"] in self.refuse:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large"))
        self.records.append((topic, kw["partition"], kw["value"]))


def test_records_go_out_at_the_end_of_the_turn_in_order() -> None:
    async def main() -> tuple[list[Any], list[Any], list[Any]]:
        producer = FakeProducer()
        burst = ProduceBurst(producer, asyncio.get_running_loop())  # type: ignore[arg-type]
        for i in range(3):
            burst.produce_encoded("log", i % 2, "Invoke", b"v%d" % i)
        during = list(producer.records)
        await asyncio.sleep(0)
        after_one_turn = list(producer.records)
        burst.produce_encoded("log", 0, "Invoke", b"v3")
        burst.flush()  # a caller that must not wait a turn
        return during, after_one_turn, producer.records

    during, after, final = asyncio.run(main())
    assert during == []
    assert after == [("log", 0, b"v0"), ("log", 1, b"v1"), ("log", 0, b"v2")]
    assert final[-1] == ("log", 0, b"v3") and len(final) == 4


def test_a_refused_record_is_a_failed_delivery_and_the_rest_still_go_out() -> None:
    reports: list[tuple[int, str]] = []

    def delivered(err: KafkaError | None, _msg: Any) -> None:
        assert err is not None
        reports.append((err.code(), err.str()))

    async def main() -> list[Any]:
        producer = FakeProducer(refuse={b"big"})
        burst = ProduceBurst(producer, asyncio.get_running_loop())  # type: ignore[arg-type]
        burst.produce_encoded("log", 0, "Invoke", b"a")
        burst.produce_encoded("log", 0, "Invoke", b"big", on_delivery=delivered)
        burst.produce_encoded("log", 0, "Invoke", b"big")  # no callback: logged, not raised
        burst.produce_encoded("log", 0, "Invoke", b"c")
        await asyncio.sleep(0)
        return producer.records

    assert asyncio.run(main()) == [("log", 0, b"a"), ("log", 0, b"c")]
    assert reports == [(KafkaError.MSG_SIZE_TOO_LARGE, "too large")]
