"""What the ingress and the admin API need from the log: produce a record, await Kafka's ack, await a reply."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, Message, Producer

from reprise.engine.config import Config
from reprise.engine.ids import InvocationId
from reprise.engine.kafka import LoopDeliveries, log_partitions, producer_config, topic_max_message_bytes
from reprise.engine.kafka_stats import KAFKA_STATS
from reprise.engine.local_replies import LocalReplies
from reprise.engine.produce_burst import ProduceBurst
from reprise.ingress.errors import IngressError
from reprise.ingress.replies import ReplyListener
from reprise.schemas.records import ReplyTo

if TYPE_CHECKING:
    from aiohttp import web

ENVELOPE_BYTES = 16 * 1024  # room for an Invoke's other fields and headers around the body


class LogClient:
    def __init__(self, cfg: Config, role: str, local_replies: LocalReplies | None = None) -> None:
        self.cfg = cfg
        self.client_id = f"{role}-{uuid.uuid4().hex[:12]}"
        self.replies = ReplyListener(cfg, self.client_id, local_replies)
        self.partitions = log_partitions(cfg)
        self.producer: Producer | None = None
        self._deliveries: LoopDeliveries | None = None
        self._burst: ProduceBurst | None = None

    def serve_with(self, app: web.Application) -> None:
        """Start with the aiohttp app and stop with it."""
        async def start(_app: web.Application) -> None:
            self.start()

        async def stop(_app: web.Application) -> None:
            self.stop()

        app.on_startup.append(start)
        app.on_cleanup.append(stop)

    def start(self) -> None:
        limit = topic_max_message_bytes(self.cfg, self.cfg.log_topic)
        if self.cfg.max_message_bytes + ENVELOPE_BYTES > limit:
            raise RuntimeError(f"the configured maximum body ({self.cfg.max_message_bytes} bytes) does not fit the "
                               f"topic {self.cfg.log_topic} (max.message.bytes={limit}): lower "
                               f"REPRISE_MAX_MESSAGE_BYTES or raise the topic's limit")
        self.producer = Producer(producer_config(self.cfg, **{"message.timeout.ms": self.cfg.produce_timeout_ms},
                                                 **KAFKA_STATS.settings(self.cfg, "ingress-producer")))
        self._deliveries = LoopDeliveries(self.producer, asyncio.get_running_loop())
        self._burst = ProduceBurst(self.producer, asyncio.get_running_loop())
        self.replies.start()

    def stop(self) -> None:
        self.replies.stop()
        if self._burst:
            self._burst.flush()
        if self._deliveries:
            self._deliveries.close()

    def reply_to(self, request_id: str) -> ReplyTo:
        return {"topic": "replies", "ingress_id": self.client_id, "request_id": request_id}

    def partition_of(self, invocation: InvocationId) -> int:
        return invocation.partition(self.partitions)

    async def produce(self, kind: str, partition: int, record: Mapping[str, Any], key: bytes | None = None) -> None:
        """Produce a record and return once Kafka acknowledged it (acks=all); 503 if it cannot."""
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def delivered(err: KafkaError | None, _msg: Message) -> None:  # on the loop (LoopDeliveries)
            if acked.done():
                return
            if err is None:
                acked.set_result(None)
            else:
                acked.set_exception(_unavailable(err))

        self._produce(kind, partition, record, key, delivered, awaited=True)
        await acked

    async def request(self, kind: str, partition: int, record: Mapping[str, Any], request_id: str,
                      key: bytes | None = None) -> dict[str, Any]:
        """Produce a record that names this client as reply_to/ack_to, and wait for the answer, at
        most ``reply_timeout_s`` (then 504: the invocation itself goes on, a client can attach to it).

        The ack is not awaited: no answer can come before the record is in the log, and a record
        Kafka gave up on fails the request with 503 through its delivery report."""
        fut = self.replies.wait_for(request_id)

        def delivered(err: KafkaError | None, _msg: Message) -> None:  # on the loop (LoopDeliveries)
            if err is not None and not fut.done():
                fut.set_exception(_unavailable(err))

        def expire() -> None:  # every wait has an end: REPRISE_REPLY_TIMEOUT_S
            if not fut.done():
                fut.set_exception(_no_reply(self.cfg.reply_timeout_s, record.get("invocation_id")))

        timer = asyncio.get_running_loop().call_later(self.cfg.reply_timeout_s, expire)
        try:
            self._produce(kind, partition, record, key, delivered, awaited=False)
            return await fut
        finally:
            timer.cancel()
            self.replies.forget(request_id, fut)

    def _produce(self, kind: str, partition: int, record: Mapping[str, Any], key: bytes | None,
                 delivered: Callable[[KafkaError | None, Message], None], awaited: bool) -> None:
        assert self._burst is not None, "start() first"
        if self._deliveries is not None:
            delivered = self._deliveries.track(delivered, awaited)
        try:
            self._burst.produce_record(self.cfg.log_topic, partition, kind, record, key=key, on_delivery=delivered)
        except Exception as e:  # noqa: BLE001 - any producer failure is a 503 to the client
            raise IngressError(503, f"cannot write to the log: {e}") from None
        if self._deliveries is not None:
            self._deliveries.produced(awaited)


def _unavailable(err: KafkaError) -> IngressError:
    return IngressError(503, f"log unavailable: {err.str()}")


def _no_reply(timeout_s: float, invocation_id: str | None) -> IngressError:
    headers = {"x-restate-id": invocation_id} if invocation_id else {}
    attach = (f"; it goes on: GET /restate/invocation/{invocation_id}/attach waits for its result"
              if invocation_id else "")
    return IngressError(504, f"no answer within {timeout_s:g} s (REPRISE_REPLY_TIMEOUT_S){attach}", headers)
