"""Records produced during one event-loop turn go to librdkafka back to back, at the turn's end.

With ``linger.ms`` 0 a produce that finds librdkafka's queue empty wakes the producer's broker
thread, and confluent-kafka holds the GIL through that: ~25 µs a call on the 2-core VM, against
2-3 µs for each record produced right behind it, to any partition (measured standalone on
2026-12-01 by tests/bench/produce_cost.py; docs/benchmarks.md, "Producing at linger.ms 0"). The engine's
loop produces a record per request (the ingress's Invoke) and per attempt (InvokerEffects) as
events arrive; gathered per turn, one wake-up serves them all. The cost: a record reaches
librdkafka one loop turn later.

Event-loop thread only (a producer's other threads produce directly). Order is kept (one FIFO). A
record librdkafka refuses at once is reported to its delivery callback as a failed delivery, as if
Kafka had refused it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from reprise.engine.kafka import produce_encoded
from reprise.schemas import codec

log = logging.getLogger(__name__)
Delivery = Callable[[KafkaError | None, Any], None]


class ProduceBurst:
    """A producer's loop-side front: ``produce_*`` queue, the end of the loop turn produces."""

    def __init__(self, producer: Producer, loop: asyncio.AbstractEventLoop) -> None:
        self.producer = producer
        self._loop = loop
        self._pending: list[tuple[str, int, str, bytes, bytes | None, Delivery | None, bool]] = []

    def produce_record(self, topic: str, partition: int, kind: str, record: Mapping[str, Any],
                       key: bytes | None = None, on_delivery: Delivery | None = None) -> None:
        self.produce_encoded(topic, partition, kind, codec.encode(kind, record), key, on_delivery)

    def produce_encoded(self, topic: str, partition: int, kind: str, value: bytes, key: bytes | None = None,
                        on_delivery: Delivery | None = None, ordered: bool = False) -> None:
        """``ordered``: once such a record to (topic, partition) is refused, the turn's later ordered
        records to it are refused too, so none of them lands ahead of the refused one."""
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append((topic, partition, kind, value, key, on_delivery, ordered))

    def flush(self) -> None:
        """Produce what is queued now (the loop calls it; so may a caller that must not wait a turn)."""
        pending, self._pending = self._pending, []
        refused: dict[tuple[str, int], KafkaError] = {}
        for topic, partition, kind, value, key, on_delivery, ordered in pending:
            if ordered and refused and (topic, partition) in refused and on_delivery is not None:
                on_delivery(refused[(topic, partition)], None)
                continue
            try:
                produce_encoded(self.producer, topic, partition, kind, value, key, on_delivery)
            except Exception as e:  # noqa: BLE001 - one refused record must not drop the rest of the turn's
                err = e.args[0] if isinstance(e, KafkaException) and e.args else KafkaError(
                    KafkaError._INVALID_ARG, f"{type(e).__name__}: {e}")
                if on_delivery is None:
                    log.error("%s record for %s[%d] refused by the producer: %s", kind, topic, partition, err)
                else:
                    on_delivery(err, None)
                if ordered:
                    refused[(topic, partition)] = err
