"""Waiting for results: the ingress follows the replies topic and resolves the matching request."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from prometheus_client import Counter

from reprise.engine.config import Config
from reprise.engine.consumed import ConsumedRecord
from reprise.engine.critical import critical_thread
from reprise.engine.kafka import high_watermark, new_consumer, next_batch
from reprise.engine.local_replies import LocalReplies
from reprise.schemas import codec

log = logging.getLogger(__name__)

SKIPPED = Counter("reprise_reply_records_skipped_total",
                  "Records on the replies topic that are not a well-formed Reply (skipped)")


class ReplyListener:
    def __init__(self, cfg: Config, ingress_id: str, local_replies: LocalReplies | None = None) -> None:
        self._cfg = cfg
        self.ingress_id = ingress_id
        self._local_replies = local_replies  # where partitions of this process hand replies, if any
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start reading at the current end, before any request of ours can be answered."""
        self._loop = asyncio.get_running_loop()
        consumer = new_consumer(self._cfg)
        high = high_watermark(consumer, self._cfg.replies_topic, 0)
        consumer.assign([TopicPartition(self._cfg.replies_topic, 0, high)])
        # Critical: without it every call of this process would wait for nothing (engine/critical.py)
        self._thread = critical_thread(self._follow, "replies", consumer)
        if self._local_replies is not None:
            self._local_replies.register(self.ingress_id, self.deliver)

    def stop(self) -> None:
        if self._local_replies is not None:
            self._local_replies.unregister(self.ingress_id)
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def wait_for(self, request_id: str) -> asyncio.Future[dict[str, Any]]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(request_id, []).append(fut)
        return fut

    def forget(self, request_id: str, fut: asyncio.Future[dict[str, Any]]) -> None:
        futs = self._waiters.get(request_id)
        if futs and fut in futs:
            futs.remove(fut)
            if not futs:
                del self._waiters[request_id]

    def _follow(self, consumer: Consumer) -> None:
        mine, loop = self.ingress_id, self._loop
        try:
            assert loop is not None, "start() sets the loop before it starts this thread"
            while not self._stop.is_set():
                for m in next_batch(consumer, 500, 0.1):
                    if m.error() is not None:
                        continue
                    reply = _decode_reply(m)
                    if reply is not None and reply["ingress_id"] == mine:
                        loop.call_soon_threadsafe(self._resolve, reply)
        finally:
            consumer.close()

    def deliver(self, reply: dict[str, Any]) -> None:
        """A reply from a partition in this process (its LocalReplies); any thread."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._resolve, reply)

    def _resolve(self, reply: dict[str, Any]) -> None:
        for fut in self._waiters.pop(reply["request_id"], []):
            if not fut.done():
                fut.set_result(reply)


def _decode_reply(m: ConsumedRecord) -> dict[str, Any] | None:
    """The Reply a record holds, or None (logged and counted) for anything else: the replies topic is
    writable by others, and one foreign record must not stop every call of this process."""
    try:
        kind, version = codec.kind_of(m.headers())
        if kind != "Reply":
            raise codec.SchemaError(f"a {kind} record, not a Reply")
        reply = codec.decode(kind, version, m.value() or b"")
        if not isinstance(reply.get("ingress_id"), str) or not isinstance(reply.get("request_id"), str):
            raise codec.SchemaError("a Reply without ingress_id and request_id")
        return reply
    except Exception as e:  # noqa: BLE001 - whatever is wrong with it, it is skipped
        SKIPPED.inc()
        log.warning("skipping record at %s/%d/%d: %s", m.topic(), m.partition(), m.offset(), e)
        return None
