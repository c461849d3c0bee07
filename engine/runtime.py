"""The composition root: wires the registry, processors, ingress and admin API into processes.

Only the CLI imports this module; nothing in engine/, partitions/ or ingress/ imports it back.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from aiohttp import web

from engine.config import Config
from engine.kafka import create_topics
from engine.registry import Registry
from engine.subscriptions import SubscriptionRegistry
from ingress.admin import Admin
from ingress.server import Ingress
from ingress.subscriptions import SubscriptionRunner
from partitions.introspect import StoreIntrospector
from partitions.processor import PartitionProcessor

log = logging.getLogger("reprise")


@dataclass
class Engine:
    """Everything ``reprise dev`` runs in one process."""

    cfg: Config
    registry: Registry
    processor: PartitionProcessor
    runners: list[web.AppRunner]
    subscriptions: SubscriptionRegistry
    subscription_runner: SubscriptionRunner

    async def stop(self) -> None:
        self.subscription_runner.stop()
        for r in self.runners:
            await r.cleanup()
        await self.processor.stop()
        self.subscriptions.stop()
        self.registry.stop()


async def _serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    # Calls still waiting for a result must not hold a shutdown for aiohttp's default 60 s: their
    # invocations are durable and go on; the clients reconnect or attach.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def start_engine(cfg: Config) -> Engine:
    loop = asyncio.get_running_loop()
    created = await loop.run_in_executor(None, create_topics, cfg)
    if created:
        log.info("created topics %s", ", ".join(created))
    registry = Registry(cfg)
    await loop.run_in_executor(None, registry.start)
    processor = PartitionProcessor(cfg, registry)
    await processor.start()
    await asyncio.wait_for(processor.leader_ready.wait(), 60)
    subscriptions = SubscriptionRegistry(cfg)
    await loop.run_in_executor(None, subscriptions.start)
    introspector = StoreIntrospector(processor.stores, processor.partition_count)
    runners = [await _serve(Admin(cfg, registry, introspector, subscriptions).app(), cfg.admin_host, cfg.admin_port),
               await _serve(Ingress(cfg, registry).app(), cfg.ingress_host, cfg.ingress_port)]
    runner = SubscriptionRunner(cfg, registry, subscriptions)
    runner.start()
    return Engine(cfg, registry, processor, runners, subscriptions, runner)


async def run_dev(cfg: Config) -> None:
    """Run until SIGINT or SIGTERM, then stop everything cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine = await start_engine(cfg)
    print(f"reprise ready: ingress http://{cfg.ingress_host}:{cfg.ingress_port}  "
          f"admin http://{cfg.admin_host}:{cfg.admin_port}  kafka {cfg.bootstrap}  "
          f"partitions {engine.processor.partition_count}", flush=True)
    await stop.wait()
    log.info("stopping")
    await engine.stop()
