"""One batch of a subscription's source records: forward each as an Invoke, and say how far it is safe
to commit.

A source offset is committed only once the record's Invoke (or, for a record that can never be an
Invoke, its dead letter) was acknowledged by Kafka. A record Kafka refuses for what it is (too large)
or that cannot be an Invoke (no key for a keyed target) is dead-lettered; one whose delivery failed
for any other reason (a timeout, the broker away) is not committed: the consumer is rewound to it and
it is forwarded again. Nothing is skipped silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from reprise.engine.consumed import ConsumedRecord
from reprise.engine.dead_letters import produce_dead_letter

log = logging.getLogger(__name__)

# Refused for what the record is, not for the moment: retrying cannot help, so it is dead-lettered.
PERMANENT = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD, KafkaError.INVALID_MSG,
                       KafkaError.INVALID_MSG_SIZE})

OnDelivery = Callable[[KafkaError | None, Message], None]


class Refused(Exception):
    """The source record cannot become an Invoke (e.g. a keyed target and no key): dead-letter it."""


@dataclass
class BatchOutcome:
    commit: list[TopicPartition] = field(default_factory=list)  # next offset to read, per source partition
    rewind: list[TopicPartition] = field(default_factory=list)  # the first record to forward again
    dead_lettered: int = 0


def forward_batch(producer: Producer, msgs: list[ConsumedRecord],
                  produce_invoke: Callable[[ConsumedRecord, OnDelivery], None],
                  dead_letter_topic: str, stopping: Callable[[], bool], flush_s: float = 5.0) -> BatchOutcome:
    """Forward ``msgs`` (in source order) with ``produce_invoke(msg, on_delivery)``; returns what to
    commit and where to rewind. Once ``stopping()`` is true it stops waiting for acknowledgements
    (nothing from an unacknowledged record on is committed then)."""
    results: dict[int, KafkaError | None] = {}  # index -> delivery result; absent: not acknowledged
    refused: list[tuple[int, str]] = []

    def result_for(i: int) -> OnDelivery:
        def delivered(err: KafkaError | None, _m: Message) -> None:
            results[i] = err
        return delivered

    def dead_letter_result_for(i: int) -> Callable[[KafkaError | None], None]:
        def delivered(err: KafkaError | None) -> None:
            results[i] = err
        return delivered

    for i, m in enumerate(msgs):
        try:
            produce_invoke(m, result_for(i))
        except Refused as e:
            refused.append((i, str(e)))
        except KafkaException as e:
            err = e.args[0]
            if err.code() in PERMANENT:
                refused.append((i, f"cannot become an Invoke: {err.str()}"))
            else:
                results[i] = err
    _wait(producer, stopping, flush_s)
    refused += [(i, f"Invoke refused by Kafka: {err.str()}") for i, err in results.items()
                if err is not None and err.code() in PERMANENT]
    for i, reason in refused:
        m = msgs[i]
        log.warning("%s/%d/%d: dead-lettered: %s", m.topic(), m.partition(), m.offset(), reason)
        results.pop(i, None)
        headers = [("reprise-dead-letter-reason", reason.encode()),
                   ("reprise-source", f"{m.topic()}/{m.partition()}/{m.offset()}".encode())]
        produce_dead_letter(producer, dead_letter_topic, m.key(), m.value(), headers,
                            dead_letter_result_for(i))
    if refused:
        _wait(producer, stopping, flush_s)
    return _outcome(msgs, results, len(refused))


def _wait(producer: Producer, stopping: Callable[[], bool], flush_s: float) -> None:
    while producer.flush(flush_s) != 0 and not stopping():
        log.warning("waiting for Kafka to acknowledge a subscription batch")


def _outcome(msgs: list[ConsumedRecord], results: dict[int, KafkaError | None], dead_lettered: int) -> BatchOutcome:
    """Per source partition: commit up to the first record not acknowledged, and rewind to it."""
    first_unacked: dict[tuple[str, int], int] = {}
    last: dict[tuple[str, int], int] = {}
    for i, m in enumerate(msgs):
        tp = (m.topic(), m.partition())
        last[tp] = m.offset()
        if tp not in first_unacked and (i not in results or results[i] is not None):
            first_unacked[tp] = m.offset()
    out = BatchOutcome(dead_lettered=dead_lettered)
    for tp, offset in last.items():
        stop = first_unacked.get(tp)
        out.commit.append(TopicPartition(tp[0], tp[1], offset + 1 if stop is None else stop))
        if stop is not None:
            out.rewind.append(TopicPartition(tp[0], tp[1], stop))
    return out
