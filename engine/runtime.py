"""The composition root: wires the registry, processors, ingress and admin API into processes.

Only the CLI imports this module; nothing in engine/, partitions/ or ingress/ imports it back.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from confluent_kafka import Producer

from engine import gc_policy, thread_policy
from engine.config import Config
from engine.kafka import create_topics
from engine.registry import Deployment, Registry
from engine.subscriptions import SubscriptionRegistry
from ingress.admin import Admin
from ingress.commands import CommandRouter
from ingress.server import Ingress
from ingress.subscriptions import SubscriptionRunner
from partitions.embedded import EmbeddedApp
from partitions.introspect import StoreIntrospector
from partitions.processor import PartitionProcessor, processor_producer
from partitions.store import bound_memtables

log = logging.getLogger("reprise")


@dataclass
class Node:
    """What one process runs: ``reprise dev`` (everything), ``reprise processor`` or ``reprise ingress``."""

    cfg: Config
    registry: Registry
    closers: list[Callable[[], Awaitable[None]]]  # the HTTP servers' own close, in order
    processor: PartitionProcessor | None = None
    subscriptions: SubscriptionRegistry | None = None
    subscription_runner: SubscriptionRunner | None = None
    commands: CommandRouter | None = None

    async def stop(self) -> None:
        if self.subscription_runner is not None:
            self.subscription_runner.stop()
        if self.commands is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.commands.stop)
        for close in self.closers:
            await close()
        if self.processor is not None:
            await self.processor.stop()
        if self.subscriptions is not None:
            self.subscriptions.stop()
        self.registry.stop()


async def _serve(app: web.Application, host: str, port: int) -> Callable[[], Awaitable[None]]:
    """Serve an aiohttp app (the admin API); returns its close."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner.cleanup


async def _registry(cfg: Config) -> Registry:
    loop = asyncio.get_running_loop()
    created = await loop.run_in_executor(None, create_topics, cfg)
    if created:
        log.info("created topics %s", ", ".join(created))
    registry = Registry(cfg)
    await loop.run_in_executor(None, registry.start)
    return registry


async def _start_processor(cfg: Config, registry: Registry, group: bool, producer: Producer) -> PartitionProcessor:
    processor = PartitionProcessor(cfg, registry, group=group, producer=producer)
    await processor.start()
    if processor.embedded is not None:
        await _register_embedded(registry, processor.embedded)
    await asyncio.wait_for(processor.leader_ready.wait(), 120)
    return processor


async def _register_embedded(registry: Registry, app: EmbeddedApp) -> None:
    """Register the in-process app as a deployment (again only if its manifest changed)."""
    manifest = await app.discover()
    existing = registry.find_by_uri(app.uri)
    if existing is None or existing.manifest != manifest:
        await asyncio.get_running_loop().run_in_executor(
            None, registry.publish, Deployment.new(app.uri, True, {}, manifest))
    log.info("embedded app %s serves %s", app.spec, ", ".join(s["name"] for s in manifest["services"]))


async def start_engine(cfg: Config) -> Node:
    """Everything in one process, owning every partition (no consumer group): ``reprise dev``."""
    producer = processor_producer(cfg)  # first: it gets its producer id while the rest starts
    registry = await _registry(cfg)
    processor = await _start_processor(cfg, registry, group=False, producer=producer)
    node = await _with_ingress(cfg, registry, processor)
    return node


async def start_processor(cfg: Config) -> Node:
    """A consumer-group member: the partitions it is assigned, and an admin API for them (metrics, health)."""
    producer = processor_producer(cfg)  # first: it gets its producer id while the rest starts
    registry = await _registry(cfg)
    processor = await _start_processor(cfg, registry, group=True, producer=producer)
    introspector = StoreIntrospector(processor.stores, processor.partition_count)
    admin = Admin(cfg, registry, introspector, partitions=processor)
    return Node(cfg, registry, [await _serve(admin.app(), cfg.admin_host, cfg.admin_port)], processor)


async def start_ingress(cfg: Config) -> Node:
    """The HTTP ingress, the admin API, the subscription runner and the commands router, without partitions:
    ``reprise ingress``."""
    return await _with_ingress(cfg, await _registry(cfg), None)


async def _with_ingress(cfg: Config, registry: Registry, processor: PartitionProcessor | None) -> Node:
    loop = asyncio.get_running_loop()
    subscriptions = SubscriptionRegistry(cfg)
    await loop.run_in_executor(None, subscriptions.start)
    introspector = StoreIntrospector(processor.stores, processor.partition_count) if processor else None
    admin = Admin(cfg, registry, introspector, subscriptions, partitions=processor)
    closers = [await _serve(admin.app(), cfg.admin_host, cfg.admin_port)]
    ingress = Ingress(cfg, registry)  # last: a listening ingress port says the node is up
    await ingress.start(cfg.ingress_host, cfg.ingress_port)
    closers.append(ingress.close)
    runner = SubscriptionRunner(cfg, registry, subscriptions)
    runner.start()
    commands = CommandRouter(cfg, registry)  # with the ingress: the same checks, ids and routing (ingress/commands.py)
    commands.start()
    return Node(cfg, registry, closers, processor, subscriptions, runner, commands)


async def run(cfg: Config, role: str) -> None:
    """Run a node until SIGINT or SIGTERM, then stop everything cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    start = {"dev": start_engine, "processor": start_processor, "ingress": start_ingress}[role]
    bound_memtables(cfg.store_memtable_mb << 20)  # before any store opens
    node = await start(cfg)
    gc_policy.settle(cfg.gc_gen0_threshold)  # started: what exists now lives as long as the process
    demoting = asyncio.create_task(thread_policy.keep_demoted()) if cfg.helper_threads_batch else None
    parts = [f"reprise {role} ready:"]
    if role != "processor":
        parts.append(f"ingress http://{cfg.ingress_host}:{cfg.ingress_port}")
    parts += [f"admin http://{cfg.admin_host}:{cfg.admin_port}", f"kafka {cfg.bootstrap}"]
    if node.processor is not None:
        parts.append(f"partitions {node.processor.partition_count}")
    print("  ".join(parts), flush=True)
    await stop.wait()
    log.info("stopping")
    if demoting is not None:
        demoting.cancel()
    await node.stop()


async def run_dev(cfg: Config) -> None:
    await run(cfg, "dev")
