"""The admin API's subscriptions and Kafka clusters, as Restate 1.7 serves them (docs/admin-api.md).

A subscription's source is ``kafka://<cluster>/<topic>``: the cluster is the one Reprise runs on
(under its configured name) or one registered with ``POST /kafka-clusters``; any other name is
refused, as Restate refuses it. Credentials in a cluster's properties are never shown.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from reprise.engine.clock import now_ms
from reprise.engine.config import Config
from reprise.engine.kafka_clusters import KafkaCluster, name_problem, own_cluster, properties_problem
from reprise.engine.registry import Registry
from reprise.engine.subscriptions import Subscription, SubscriptionRegistry, options_problem
from reprise.ingress.errors import IngressError
from reprise.ingress.request_io import in_thread, json_object


class SubscriptionRoutes:
    def __init__(self, cfg: Config, registry: Registry, subscriptions: Callable[[], SubscriptionRegistry]) -> None:
        self.cfg, self.registry, self._subscriptions = cfg, registry, subscriptions

    def add_to(self, r: web.UrlDispatcher) -> None:
        r.add_post("/subscriptions", self.create_subscription)
        r.add_get("/subscriptions", self.list_subscriptions)
        r.add_get("/subscriptions/{id}", self.get_subscription)
        r.add_delete("/subscriptions/{id}", self.delete_subscription)
        r.add_get("/kafka-clusters", self.list_clusters)
        r.add_post("/kafka-clusters", self.create_cluster)
        r.add_get("/kafka-clusters/{name}", self.get_cluster)
        r.add_patch("/kafka-clusters/{name}", self.update_cluster)
        r.add_delete("/kafka-clusters/{name}", self.delete_cluster)

    def _describe(self, sub: Subscription) -> dict[str, Any]:
        return sub.describe(self.cfg.kafka_cluster_name, self.cfg.namespace)

    # -- subscriptions

    async def create_subscription(self, request: web.Request) -> web.Response:
        """Restate's body: {"source": "kafka://<cluster>/<topic>", "sink": "service://<Service>/<handler>",
        "options": {...}}; the options are the consumer's librdkafka properties (``auto.offset.reset``, ...),
        checked in Restate's order (the source's scheme, the sink, then the source's cluster)."""
        subs = self._subscriptions()
        body = await json_object(request)
        source, sink, options = body.get("source"), body.get("sink"), body.get("options") or {}
        if not isinstance(source, str):
            raise _undeserializable("source", "a string URI")
        if not isinstance(sink, str):
            raise _undeserializable("sink", "a string URI")
        if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
            raise _undeserializable("options", "a map of strings")
        if not source.startswith("kafka://"):
            raise _invalid_uri("source", source, "must have a scheme segment, with supported schemes: [kafka].")
        service, handler = self._sink_target(sink)
        problem = options_problem(options)
        if problem is not None:
            raise IngressError(400, problem)
        cluster, _, topic = source.removeprefix("kafka://").partition("/")
        if not cluster or not topic or "/" in topic:
            raise IngressError(400, f"bad source {source!r} (expected kafka://<cluster>/<topic>)")
        registered = self._cluster_of_subscription(subs, cluster)
        sub, created = await in_thread(subs.create, topic, service, handler, registered, options)
        return web.json_response(self._describe(sub), status=201 if created else 200,
                                 headers={"location": f"subscriptions/{sub.id}"})

    def _sink_target(self, sink: str) -> tuple[str, str]:
        """(service, handler) of ``service://<Service>/<handler>``, refused as Restate refuses it."""
        if not sink.startswith("service://"):
            raise _invalid_uri("sink", sink, "must have a scheme segment, with supported schemes: [service].")
        target = sink.removeprefix("service://").partition("?")[0]
        service, slash, handler = target.partition("/")
        svc = self.registry.service(service)
        if svc is None or handler not in svc.handlers:
            shown = sink if slash else f"{sink}/"  # Restate shows the URI with its (empty) path
            raise _invalid_uri("sink", shown, "cannot find service/handler specified in the sink URI.")
        return service, handler

    def _cluster_of_subscription(self, subs: SubscriptionRegistry, name: str) -> str | None:
        """The registered cluster a source names (None: the own one); refused as Restate refuses it."""
        if name == self.cfg.kafka_cluster_name:
            return None
        if subs.cluster(name) is not None:
            return name
        names = [c.name for c in subs.clusters()] + [self.cfg.kafka_cluster_name]
        raise IngressError(400, f"Kafka cluster '{name}' not found. Available clusters: "
                                f"[{', '.join(json.dumps(n) for n in names)}]")

    async def list_subscriptions(self, request: web.Request) -> web.Response:
        """Restate's filters: ``?sink=service://S/h`` and ``?source=kafka://cluster/topic``."""
        sink, source = request.query.get("sink"), request.query.get("source")
        subs = [self._describe(s) for s in self._subscriptions().all()]
        return web.json_response({"subscriptions": [s for s in subs if (sink is None or s["sink"] == sink)
                                                    and (source is None or s["source"] == source)]})

    async def get_subscription(self, request: web.Request) -> web.Response:
        sub = self._subscriptions().get(request.match_info["id"])
        if sub is None:
            raise IngressError(404, f"The requested subscription '{request.match_info['id']}' does not exist")
        return web.json_response(self._describe(sub))

    async def delete_subscription(self, request: web.Request) -> web.Response:
        if not await in_thread(self._subscriptions().delete, request.match_info["id"]):
            raise IngressError(404, f"subscription {request.match_info['id']} not found")
        return web.Response(status=202)

    # -- Kafka clusters

    def _clusters(self) -> list[KafkaCluster]:
        return [*self._subscriptions().clusters(), own_cluster(self.cfg)]

    def _cluster(self, request: web.Request) -> KafkaCluster:
        name = request.match_info["name"]
        found = next((c for c in self._clusters() if c.name == name), None)
        if found is None:
            raise IngressError(404, f"The requested Kafka cluster '{name}' does not exist")
        return found

    def _users(self, cluster: KafkaCluster) -> list[Subscription]:
        """The subscriptions that read from ``cluster``."""
        wanted = None if cluster.own else cluster.name
        return [s for s in self._subscriptions().all() if s.cluster == wanted]

    async def list_clusters(self, _r: web.Request) -> web.Response:
        return web.json_response({"clusters": [c.describe() for c in self._clusters()]})

    async def get_cluster(self, request: web.Request) -> web.Response:
        cluster = self._cluster(request)
        include = request.query.get("include_subscriptions", "false")
        if include not in ("true", "false"):
            raise IngressError(400, "include_subscriptions: provided string was not `true` or `false`")
        users = self._users(cluster) if include == "true" else []
        return web.json_response({**cluster.describe(), "subscriptions": [self._describe(s) for s in users]})

    def _refuse_own(self, cluster: KafkaCluster) -> None:
        if cluster.own:
            raise IngressError(409, f"kafka cluster '{cluster.name}' cannot be changed, because it is the cluster "
                                    "Reprise runs on: its settings are the engine's configuration (--kafka, "
                                    "REPRISE_KAFKA_CONFIG)")

    async def create_cluster(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        properties = body.get("properties")
        problem = name_problem(body.get("name")) or properties_problem(str(body.get("name")), properties)
        if problem is not None:
            raise IngressError(400, problem)
        name = str(body["name"])
        if name == self.cfg.kafka_cluster_name:
            raise IngressError(409, f"kafka cluster '{name}' is the name of the cluster Reprise runs on: register "
                                    "another cluster under another name")
        subs = self._subscriptions()
        if subs.cluster(name) is not None:
            raise IngressError(409, f"kafka cluster '{name}' already exists")
        cluster = await in_thread(subs.put_cluster, name, properties, now_ms())
        return web.json_response(cluster.describe(), status=201, headers={"location": f"kafka-clusters/{name}"})

    async def update_cluster(self, request: web.Request) -> web.Response:
        """Restate's update: the properties are replaced as a whole; subscriptions on the cluster
        reconnect with them."""
        cluster = self._cluster(request)
        self._refuse_own(cluster)
        properties = (await json_object(request)).get("properties")
        problem = properties_problem(cluster.name, properties)
        if problem is not None:
            raise IngressError(400, problem)
        updated = await in_thread(self._subscriptions().put_cluster, cluster.name, properties, cluster.created_ms)
        return web.json_response(updated.describe())

    async def delete_cluster(self, request: web.Request) -> web.Response:
        """202 once removed. A cluster subscriptions still read from is removed only with
        ``force=true``; those subscriptions then stop until a cluster of that name is registered again."""
        cluster = self._cluster(request)
        self._refuse_own(cluster)
        users = self._users(cluster)
        if users and request.query.get("force", "false").lower() != "true":
            raise IngressError(409, f"Removing the kafka cluster '{cluster.name}' leads to subscription "
                                    f"'{users[0].id}' being orphan. Remove the subscription first, or use the "
                                    "'force' flag.")
        await in_thread(self._subscriptions().delete_cluster, cluster.name)
        return web.Response(status=202)


def _undeserializable(field: str, expected: str) -> IngressError:
    """Restate's answer to a body of the wrong shape: 422, its deserializer's message."""
    return IngressError(422, f"Failed to deserialize the JSON body into the target type: {field}: expected {expected}")


def _invalid_uri(which: str, uri: str, reason: str) -> IngressError:
    """Restate's refusal of a subscription's source or sink (``META0009``)."""
    return IngressError(400, f"[META0009] invalid {which} URI '{uri}': {reason}", restate_code="META0009")
