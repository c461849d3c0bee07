"""The composition root: wires the registry, processors, ingress and admin API into processes.

Only the CLI imports this module; nothing in engine/, partitions/ or ingress/ imports it back.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from confluent_kafka import Producer
from rocksdict import DbClosedError

from reprise.deploy import test_controls
from reprise.engine import gc_policy, thread_policy
from reprise.engine.cluster_members import Members
from reprise.engine.config import Config
from reprise.engine.critical import fail_process
from reprise.engine.health import Health
from reprise.engine.kafka import create_topics, log_partitions
from reprise.engine.local_replies import LocalReplies
from reprise.engine.registry import Deployment, Registry
from reprise.engine.subscriptions import SubscriptionRegistry
from reprise.ingress.admin import Admin
from reprise.ingress.admin_guard import read_token
from reprise.ingress.cluster import ClusterReads
from reprise.ingress.commands import CommandRouter
from reprise.ingress.health import health_app
from reprise.ingress.server import Ingress
from reprise.ingress.subscriptions import SubscriptionRunner
from reprise.partitions.invoker.embedded import EmbeddedApp
from reprise.partitions.leader.processor import PartitionProcessor, processor_producer
from reprise.partitions.state.introspect import StoreIntrospector, StoreTables
from reprise.partitions.state.rocks_store import bound_memtables

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


class AdminPort:
    """The admin port: its health routes answer from the first moment (a process waiting for Kafka
    says so: not ready, yet live), the whole admin API once its components exist."""

    def __init__(self, cfg: Config, health: Health) -> None:
        self.cfg, self.health = cfg, health
        self._early: Callable[[], Awaitable[None]] | None = None

    async def open_early(self) -> None:
        self._early = await _serve(health_app(self.health), self.cfg.admin_host, self.cfg.admin_port)

    async def serve(self, admin: Admin) -> Callable[[], Awaitable[None]]:
        if self._early is not None:
            await self._early()
            self._early = None
        return await _serve(admin.app(), self.cfg.admin_host, self.cfg.admin_port)


def fail_on_callback_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """An exception escaping a plain event-loop callback (a batch's actions, a timer, a sweep that
    reschedules itself) would otherwise be logged and forgotten, leaving that duty undone: end the
    process instead (engine/critical.py). Other reports (a client's broken connection, a task
    nobody awaited) keep asyncio's default handling, and so does a callback that found its
    partition's store closed: the partition moved away, and its duties with it."""
    exc = context.get("exception")
    if exc is not None and "handle" in context and not isinstance(exc, ConnectionError | OSError | DbClosedError):
        fail_process(f"event-loop callback failed: {context.get('message')}", exc)
    loop.default_exception_handler(context)


async def _serve(app: web.Application, host: str, port: int) -> Callable[[], Awaitable[None]]:
    """Serve an aiohttp app (the admin API); returns its close."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner.cleanup


async def _registry(cfg: Config, port: AdminPort) -> Registry:
    loop = asyncio.get_running_loop()
    created = await loop.run_in_executor(None, create_topics, cfg)
    if created:
        log.info("created topics %s", ", ".join(created))
    registry = Registry(cfg)
    await loop.run_in_executor(None, registry.start)
    port.health.add("registry", lambda: None if registry.loaded() else "deployments not loaded")
    return registry


async def _start_processor(cfg: Config, registry: Registry, group: bool, producer: Producer,
                           port: AdminPort, local_replies: LocalReplies | None = None) -> PartitionProcessor:
    processor = PartitionProcessor(cfg, registry, group=group, producer=producer, local_replies=local_replies)
    await processor.start()
    port.health.add("partitions", processor.readiness)
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
            None, registry.publish, Deployment.new(app.uri, True, {}, manifest, registry.id_for_uri(app.uri)))
    log.info("embedded app %s serves %s", app.spec, ", ".join(s["name"] for s in manifest["services"]))


async def start_engine(cfg: Config, port: AdminPort) -> Node:
    """Everything in one process, owning every partition (no consumer group): ``reprise dev``."""
    producer = processor_producer(cfg)  # first: it gets its producer id while the rest starts
    registry = await _registry(cfg, port)
    local_replies = LocalReplies()  # the ingress below answers from the partitions without Kafka
    processor = await _start_processor(cfg, registry, group=False, producer=producer, port=port,
                                       local_replies=local_replies)
    node = await _with_ingress(cfg, registry, processor, port, local_replies)
    return node


async def start_processor(cfg: Config, port: AdminPort) -> Node:
    """A consumer-group member: the partitions it is assigned, and an admin API for them (metrics, health)."""
    producer = processor_producer(cfg)  # first: it gets its producer id while the rest starts
    registry = await _registry(cfg, port)
    processor = await _start_processor(cfg, registry, group=True, producer=producer, port=port)
    subscriptions = await _subscriptions(cfg, port)  # its admin API serves them too; the ingress runs them
    cluster = _cluster_reads(cfg, registry, processor)
    admin = Admin(cfg, registry, cluster, subscriptions, partitions=processor, health=port.health, cluster=cluster)
    return Node(cfg, registry, [await port.serve(admin)], processor, subscriptions)


async def start_ingress(cfg: Config, port: AdminPort) -> Node:
    """The HTTP ingress, the admin API, the subscription runner and the commands router, without partitions:
    ``reprise ingress``."""
    return await _with_ingress(cfg, await _registry(cfg, port), None, port)


async def _with_ingress(cfg: Config, registry: Registry, processor: PartitionProcessor | None,
                        port: AdminPort, local_replies: LocalReplies | None = None) -> Node:
    loop = asyncio.get_running_loop()
    subscriptions = await _subscriptions(cfg, port)
    cluster = await loop.run_in_executor(None, _cluster_reads, cfg, registry, processor)
    admin = Admin(cfg, registry, cluster, subscriptions, partitions=processor, health=port.health, cluster=cluster)
    closers = [await port.serve(admin)]
    ingress = Ingress(cfg, registry, local_replies)  # last: a listening ingress port says the node is up
    await ingress.start(cfg.ingress_host, cfg.ingress_port)
    closers.append(ingress.close)
    runner = SubscriptionRunner(cfg, registry, subscriptions)
    runner.start()
    commands = CommandRouter(cfg, registry)  # with the ingress: the same checks, ids and routing
    commands.start()
    return Node(cfg, registry, closers, processor, subscriptions, runner, commands)


async def _subscriptions(cfg: Config, port: AdminPort) -> SubscriptionRegistry:
    """The subscriptions and registered Kafka clusters, read from their topic (every process's admin API
    serves them)."""
    subscriptions = SubscriptionRegistry(cfg)
    await asyncio.get_running_loop().run_in_executor(None, subscriptions.start)
    port.health.add("subscriptions", lambda: None if subscriptions.loaded() else "subscriptions not loaded")
    return subscriptions


def _cluster_reads(cfg: Config, registry: Registry, processor: PartitionProcessor | None) -> ClusterReads:
    """Admin reads for the whole cluster: from the processor's own stores, and from the other owners'
    admin APIs (found through the processors' group) for the rest; ``reprise dev`` owns everything."""
    def service_type(name: str) -> str | None:
        svc = registry.service(name)
        return svc.ty if svc is not None else None

    token = read_token(cfg.admin_token, cfg.admin_token_file)
    if processor is None:
        return ClusterReads(cfg, log_partitions(cfg), token, members=Members(cfg))
    return ClusterReads(cfg, processor.partition_count, token, StoreIntrospector(processor.stores,
                        processor.partition_count), StoreTables(processor.stores, service_type,
                        int(cfg.completed_retention_s * 1000) or None),
                        Members(cfg) if processor.group else None)


async def run(cfg: Config, role: str) -> None:
    """Run a node until SIGINT or SIGTERM, then stop everything cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    start = {"dev": start_engine, "processor": start_processor, "ingress": start_ingress}[role]
    refused = test_controls.refusal(role)
    if refused is not None:
        log.error("reprise: %s", refused)
        raise SystemExit(2)
    bound_memtables(cfg.store_memtable_mb << 20)  # before any store opens
    loop.set_exception_handler(fail_on_callback_error)
    port = AdminPort(cfg, Health(cfg))
    await port.open_early()
    node = await start(cfg, port)
    controls = await test_controls.open_if_requested(node.processor) if role == "dev" else None
    if controls is not None:  # reprise.testing asked for them (deploy/test_controls.py)
        node.closers.append(controls)
    port.health.started()
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
