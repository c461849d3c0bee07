"""A subscription commits a source offset only once its Invoke (or its dead letter) was acknowledged."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException

from reprise.ingress.subscription_batch import Refused, forward_batch


class Msg:
    def __init__(self, partition: int, offset: int, value: bytes = b"v", key: bytes | None = b"k") -> None:
        self._p, self._o, self._v, self._k = partition, offset, value, key

    def topic(self) -> str:
        return "src"

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes:
        return self._v

    def key(self) -> bytes | None:
        return self._k

    def headers(self) -> None:
        return None


class FakeProducer:
    """Queues deliveries; flush() reports them. ``dead_letter_error`` fails the first dead letter."""

    def __init__(self, dead_letter_error: KafkaError | None = None) -> None:
        self.pending: list[tuple[Any, KafkaError | None]] = []
        self.dead_letters: list[tuple[bytes | None, list[tuple[str, bytes]]]] = []
        self.dead_letter_error = dead_letter_error

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                headers: Any = None, on_delivery: Any = None, **_: Any) -> None:
        assert topic == "dlq"
        self.dead_letters.append((value, headers))
        err, self.dead_letter_error = self.dead_letter_error, None
        self.pending.append((on_delivery, err))

    def deliver(self, on_delivery: Any, err: KafkaError | None) -> None:
        self.pending.append((on_delivery, err))

    def flush(self, _timeout: float = 0) -> int:
        while self.pending:
            cb, err = self.pending.pop(0)
            if cb is not None:
                cb(err, None)
        return 0


def _forward(producer: FakeProducer, msgs: list[Msg], outcome: dict[int, Any]) -> Any:
    """Each message's Invoke ends as ``outcome[offset]``: None (acknowledged), a KafkaError (delivery
    failed), an exception to raise from produce, or "lost" (never acknowledged)."""
    def produce_invoke(m: Msg, on_delivery: Any) -> None:
        result = outcome.get(m.offset())
        if isinstance(result, BaseException):
            raise result
        if not isinstance(result, str):  # (KafkaError cannot be compared with a str)
            producer.deliver(on_delivery, result)

    return forward_batch(producer, msgs, produce_invoke, "dlq", lambda: True)  # type: ignore[arg-type]


def _commits(out: Any) -> dict[int, int]:
    return {tp.partition: tp.offset for tp in out.commit}


def test_everything_acknowledged_commits_past_the_batch() -> None:
    out = _forward(FakeProducer(), [Msg(0, 10), Msg(0, 11), Msg(1, 3)], {})
    assert _commits(out) == {0: 12, 1: 4} and out.rewind == [] and out.dead_lettered == 0


def test_a_failed_delivery_is_not_committed_and_is_forwarded_again() -> None:
    timed_out = KafkaError(KafkaError._MSG_TIMED_OUT)
    out = _forward(FakeProducer(), [Msg(0, 10), Msg(0, 11), Msg(0, 12), Msg(1, 3)], {11: timed_out})
    assert _commits(out) == {0: 11, 1: 4}
    assert [(tp.partition, tp.offset) for tp in out.rewind] == [(0, 11)]


def test_an_unacknowledged_record_is_not_committed() -> None:
    out = _forward(FakeProducer(), [Msg(0, 10), Msg(0, 11)], {10: "lost"})
    assert _commits(out) == {0: 10} and [tp.offset for tp in out.rewind] == [10]


def test_a_transient_produce_error_is_forwarded_again() -> None:
    out = _forward(FakeProducer(), [Msg(0, 10)], {10: KafkaException(KafkaError(KafkaError._TRANSPORT))})
    assert _commits(out) == {0: 10} and [tp.offset for tp in out.rewind] == [10]


def test_a_record_too_large_or_refused_is_dead_lettered_then_committed() -> None:
    producer = FakeProducer()
    too_large = KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    out = _forward(producer, [Msg(0, 10), Msg(0, 11), Msg(0, 12), Msg(0, 13)],
                   {10: too_large, 11: KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), 12: Refused("no key")})
    assert _commits(out) == {0: 14} and out.rewind == [] and out.dead_lettered == 3
    sources = [dict(h)["reprise-source"] for _, h in producer.dead_letters]
    assert sources == [b"src/0/10", b"src/0/12", b"src/0/11"]


def test_a_dead_letter_too_large_goes_without_its_value() -> None:
    producer = FakeProducer(dead_letter_error=KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    out = _forward(producer, [Msg(0, 10, value=b"x" * 1000)], {10: Refused("no key")})
    assert _commits(out) == {0: 11}
    (first, _), (second, headers) = producer.dead_letters
    assert first == b"x" * 1000 and second is None and dict(headers)["reprise-dead-letter-value-omitted"] == b"1000"


def test_a_dead_letter_not_delivered_is_not_committed() -> None:
    producer = FakeProducer(dead_letter_error=KafkaError(KafkaError._MSG_TIMED_OUT))
    out = _forward(producer, [Msg(0, 10), Msg(0, 11)], {10: Refused("no key")})
    assert _commits(out) == {0: 10} and [tp.offset for tp in out.rewind] == [10]
