"""Writing a record to the dead-letter topic, even one too large to copy there.

A record is dead-lettered with its reason and its source coordinates in headers. A value that no
longer fits (the headers added, or a source topic allowing larger records than the engine's limit)
is left out (with the source's headers), its size in ``reprise-dead-letter-value-omitted``: the
record itself can still be read at its source coordinates. Dead-lettering never raises for the size of what it copies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]


def produce_dead_letter(producer: Producer, topic: str, key: bytes | None, value: bytes | None,
                        headers: Headers, on_done: Callable[[KafkaError | None], None] | None = None) -> None:
    """Queue the dead letter; waits only while the producer's queue is full. ``on_done`` gets None once
    Kafka acknowledged it (or its copy without the value), else the delivery error."""

    def done(err: KafkaError | None) -> None:
        if err is not None:
            log.error("dead letter to %s not delivered: %s (source %s)", topic, err.str(), _source(headers))
        if on_done is not None:
            on_done(err)

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE and value is not None:
            _produce(producer, topic, key, None, _omitted(headers, value), lambda e, _m: done(e))
        else:
            done(err)

    try:
        _produce(producer, topic, key, value, headers, delivered)
    except KafkaException as e:
        if value is None:
            raise
        log.warning("dead letter of %s: value of %d bytes left out (%s)", _source(headers), len(value), e.args[0].str())
        _produce(producer, topic, key, None, _omitted(headers, value), lambda e, _m: done(e))


def _produce(producer: Producer, topic: str, key: bytes | None, value: bytes | None, headers: Headers,
             on_delivery: Any) -> None:
    while True:
        try:
            kafka_headers: list[tuple[str, str | bytes | None]] = list(headers)
            producer.produce(topic, value=value, key=key, headers=kafka_headers, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)


def _omitted(headers: Headers, value: bytes) -> Headers:
    """The dead letter's own headers only (the source's could be what is too large), and the size left out."""
    own = [(k, v) for k, v in headers if k.startswith("reprise-")]
    return own + [("reprise-dead-letter-value-omitted", str(len(value)).encode())]


def _source(headers: Headers) -> str:
    return next((v.decode(errors="replace") for k, v in headers if k == "reprise-source"), "?")
