"""Liveness and readiness: what a process can do now, for its supervisor and its load balancer.

Live: the process's critical threads run (engine/critical.py); a process that is not live is
restarted. Ready: it can serve: Kafka answers, its registries are loaded, and (a processor) every
partition it owns is caught up and led by it. A process that is not ready gets no traffic and is
left alone; one that catches up becomes ready by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from reprise.engine import critical
from reprise.engine.config import Config
from reprise.engine.kafka import admin_config

Check = Callable[[], str | None]  # None when fine, else why not


class Health:
    KAFKA_TIMEOUT_S = 2.0
    KAFKA_CACHE_S = 1.0  # probes from several sources share one metadata request a second

    def __init__(self, cfg: Config) -> None:
        self._cfg = cfg
        self._checks: dict[str, Check] = {}
        self._admin: AdminClient | None = None
        self._kafka: tuple[float, str | None] = (0.0, "not checked yet")
        self._kafka_lock = asyncio.Lock()
        self._started = False

    def started(self) -> None:
        """Every component of the process is up (until then it is not ready, whatever else holds)."""
        self._started = True

    def add(self, name: str, check: Check) -> None:
        """A readiness condition of a component this process runs."""
        self._checks[name] = check

    def live(self) -> tuple[bool, dict[str, str]]:
        dead = critical.dead_threads()
        return not dead, {"threads": "ok" if not dead else f"not running: {', '.join(dead)}"}

    async def ready(self) -> tuple[bool, dict[str, str]]:
        results = {"started": None if self._started else "still starting",
                   "kafka": await self._kafka_reachable()}
        for name, check in self._checks.items():
            try:
                results[name] = check()
            except Exception as e:  # noqa: BLE001 - a check that fails says not ready
                results[name] = f"{type(e).__name__}: {e}"
        live, why = self.live()
        results["threads"] = None if live else why["threads"]
        return all(v is None for v in results.values()), {k: v or "ok" for k, v in results.items()}

    async def _kafka_reachable(self) -> str | None:
        async with self._kafka_lock:
            checked_at, result = self._kafka
            if time.monotonic() - checked_at > self.KAFKA_CACHE_S:
                result = await asyncio.get_running_loop().run_in_executor(None, self._probe_kafka)
                self._kafka = (time.monotonic(), result)
            return result

    def _probe_kafka(self) -> str | None:
        if self._admin is None:
            self._admin = AdminClient(admin_config(self._cfg))
        try:
            meta = self._admin.list_topics(self._cfg.log_topic, timeout=self.KAFKA_TIMEOUT_S)
        except KafkaException as e:
            return f"unreachable at {self._cfg.bootstrap}: {e.args[0].str()}"
        topic: Any = meta.topics.get(self._cfg.log_topic)
        if topic is None or topic.error is not None:
            return f"topic {self._cfg.log_topic} not available: {getattr(topic, 'error', None)}"
        return None
