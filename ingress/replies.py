"""Waiting for results: the ingress follows the replies topic and resolves the matching request."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from confluent_kafka import TopicPartition

from engine import local_replies
from engine.config import Config
from engine.kafka import high_watermark, new_consumer, next_batch
from schemas import codec

log = logging.getLogger(__name__)


class ReplyListener:
    def __init__(self, cfg: Config, ingress_id: str) -> None:
        self._cfg = cfg
        self.ingress_id = ingress_id
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
        self._thread = threading.Thread(target=self._follow, args=(consumer,), name="replies", daemon=True)
        self._thread.start()
        local_replies.register(self.ingress_id, self.deliver)

    def stop(self) -> None:
        local_replies.unregister(self.ingress_id)
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

    def _follow(self, consumer: Any) -> None:
        mine = self.ingress_id
        try:
            while not self._stop.is_set():
                for m in next_batch(consumer, 500, 0.1):
                    if m.error() is not None:
                        continue
                    try:
                        kind, version = codec.kind_of(m.headers())
                        reply = codec.decode(kind, version, m.value())
                    except codec.SchemaError as e:
                        log.warning("skipping bad reply record at offset %d: %s", m.offset(), e)
                        continue
                    if reply["ingress_id"] == mine:
                        self._loop.call_soon_threadsafe(self._resolve, reply)
        finally:
            consumer.close()

    def deliver(self, reply: dict[str, Any]) -> None:
        """A reply from a partition in this process (engine/local_replies.py); any thread."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._resolve, reply)

    def _resolve(self, reply: dict[str, Any]) -> None:
        for fut in self._waiters.pop(reply["request_id"], []):
            if not fut.done():
                fut.set_result(reply)
