"""Kafka clusters subscriptions read from, by name, as Restate's ``/kafka-clusters`` has them.

The cluster Reprise runs on is always there, under ``kafka_cluster_name`` (``default`` unless
configured): its settings are the engine's own, so it is shown but cannot be changed or removed
through the API (as Restate treats a cluster from its configuration file). Other clusters are
registered by name with their librdkafka properties and stored on the subscriptions topic, so every
process sees them; a subscription names its cluster in its source, ``kafka://<cluster>/<topic>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reprise.engine import kafka_errors
from reprise.engine.config import Config
from reprise.engine.kafka import RDKAFKA_LOG
from reprise.engine.kafka_properties import settings_for

KEY_PREFIX = "kafka-cluster:"  # a cluster's key on the subscriptions topic (subscription ids start "sub_")

# Shown as "***", as Restate redacts them: any key naming a password, a secret or a private key, and
# these, which locate or carry credentials (compared case-insensitively)
_SECRET_WORDS = ("password", "secret", "private.key")
_SECRET_KEYS = frozenset({"sasl.username", "sasl.jaas.config", "sasl.oauthbearer.config",
                          "sasl.oauthbearer.token.endpoint.url", "ssl.key.location", "ssl.key.pem",
                          "ssl.keystore.location", "ssl.truststore.location"})
REDACTED = "***"
# Restate's cluster names are hostnames: letters, digits and hyphens, dot-separated
_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


@dataclass(frozen=True)
class KafkaCluster:
    name: str
    properties: dict[str, str] = field(default_factory=dict)
    created_ms: int = 0
    own: bool = False  # the cluster Reprise runs on (its settings come from the engine's configuration)

    def describe(self) -> dict[str, Any]:
        """Restate's ``SimpleKafkaClusterResponse``, credentials redacted."""
        out: dict[str, Any] = {"name": self.name, "properties": redacted(self.properties),
                               "created_at": _rfc3339(self.created_ms)}
        if self.own:
            out["info"] = [{"message": "This is the Kafka cluster Reprise runs on: its settings are the engine's "
                                       "(--kafka, REPRISE_KAFKA_CONFIG) and cannot be changed through the admin API."}]
        return out


def redacted(properties: dict[str, str]) -> dict[str, str]:
    return {k: REDACTED if is_secret(k) else v for k, v in properties.items()}


def is_secret(key: str) -> bool:
    low = key.lower()
    return low in _SECRET_KEYS or any(word in low for word in _SECRET_WORDS)


def own_cluster(cfg: Config) -> KafkaCluster:
    """The cluster Reprise runs on, with the settings its consumers use."""
    return KafkaCluster(cfg.kafka_cluster_name, {"bootstrap.servers": cfg.bootstrap,
                                                 **settings_for(cfg.kafka_config, "consumer")}, 0, own=True)


def properties_problem(name: str, properties: Any) -> str | None:
    """Why ``properties`` cannot describe a cluster (None: they can), in Restate's words."""
    if not isinstance(properties, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in properties.items()):
        return "properties must map names to strings"
    if "bootstrap.servers" not in properties and "metadata.broker.list" not in properties:
        return f"kafka cluster '{name}' properties must contain either 'bootstrap.servers' or 'metadata.broker.list'"
    return None


def name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not _NAME.match(name):
        return f"invalid kafka cluster name {name!r}: it must be a valid hostname (letters, digits, '-' and '.')"
    return None


def _rfc3339(ms: int) -> str:
    """As Restate writes ``created_at``: UTC, nanosecond digits, ``Z``."""
    t = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{ms % 1000:03d}000000Z" if ms else "Z")


def consumer_settings(properties: dict[str, str], **extra: Any) -> dict[str, Any]:
    """librdkafka settings of a consumer of a registered cluster: its properties (none of the engine's
    own cluster's settings leak to it), then what Reprise's commit discipline needs."""
    return {"logger": RDKAFKA_LOG, "error_cb": kafka_errors.client_error, "auto.offset.reset": "earliest",
            "enable.partition.eof": False, **properties,
            "enable.auto.commit": False, "enable.auto.offset.store": False, **extra}
