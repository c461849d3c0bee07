"""Kafka client settings from a properties file: what a secured cluster (SASL, TLS) or a tuning needs.

``REPRISE_KAFKA_CONFIG`` (or ``--kafka-config``) names a file of ``key=value`` lines in librdkafka's
names (``security.protocol``, ``sasl.mechanisms``, ``sasl.username``, ``ssl.ca.location``, ...), the
format of the ``client.properties`` a managed Kafka hands out. A plain key applies to every client;
``producer.``, ``consumer.`` or ``admin.`` in front of it applies it to that kind of client only, as
in Kafka Streams. ``bootstrap.servers`` in the file is the cluster unless ``--kafka`` or
``REPRISE_BOOTSTRAP`` names one.

The same file Kafka's own tools take with ``--command-config`` works too: the Java client's keys that
librdkafka names differently are translated (``sasl.jaas.config`` with a username and password, a
PEM ``ssl.truststore.location``); one with no librdkafka equivalent (a JKS truststore) is refused
with what to use instead.

The settings Reprise's guarantees rest on cannot be overridden; naming one is an error at start,
as is a key librdkafka does not know (it says so when the client is built).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

Role = Literal["producer", "consumer", "admin"]
ROLES: tuple[Role, ...] = ("producer", "consumer", "admin")

# Exactly once and the log's order depend on these; Reprise sets them per client.
PINNED = frozenset({
    "acks", "enable.idempotence", "isolation.level", "enable.auto.commit", "enable.auto.offset.store",
    "group.id", "auto.offset.reset", "transactional.id", "message.timeout.ms", "enable.partition.eof",
})


class KafkaConfigError(ValueError):
    """The properties file cannot be used; the message says which line and why."""


def parse(text: str, source: str = "kafka config") -> dict[Role | None, dict[str, str]]:
    """Settings by role (``None``: every client) from properties text; Java-style comments and blanks."""
    by_role: dict[Role | None, dict[str, str]] = {None: {}, "producer": {}, "consumer": {}, "admin": {}}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise KafkaConfigError(f"{source}:{number}: expected key=value, got {raw.strip()!r}")
        role: Role | None = None
        prefix, dot, rest = key.partition(".")
        if dot and prefix in ROLES:
            role, key = prefix, rest
        if key in PINNED:
            raise KafkaConfigError(f"{source}:{number}: {key} is set by Reprise (its delivery guarantees "
                                   "depend on it) and cannot be overridden")
        if key == "bootstrap.servers" and role is not None:
            raise KafkaConfigError(f"{source}:{number}: bootstrap.servers applies to every client, "
                                   f"not to {role} clients only")
        by_role[role].update(_from_java(key, value, f"{source}:{number}"))
    for settings in by_role.values():
        truststore_type = settings.pop("ssl.truststore.type", "PEM").upper()
        if "ssl.truststore.location" in settings:
            if truststore_type != "PEM":
                raise KafkaConfigError(f"{source}: a {truststore_type} truststore cannot be read by librdkafka: "
                                       "convert it to PEM and name it with ssl.ca.location")
            settings["ssl.ca.location"] = settings.pop("ssl.truststore.location")
    return by_role


_JAAS_CREDENTIALS = re.compile(r'(username|password)\s*=\s*"((?:[^"\\]|\\.)*)"')


def _from_java(key: str, value: str, where: str) -> dict[str, str]:
    """A Java client setting as librdkafka's (most keys are the same in both)."""
    if key == "sasl.jaas.config":
        found = {k: re.sub(r"\\(.)", r"\1", v) for k, v in _JAAS_CREDENTIALS.findall(value)}  # JAAS escapes
        if not ("PlainLoginModule" in value or "ScramLoginModule" in value) or set(found) != {"username", "password"}:
            raise KafkaConfigError(f"{where}: only a PLAIN or SCRAM sasl.jaas.config with a username and password "
                                   "translates to librdkafka; set sasl.username / sasl.password "
                                   "(or sasl.oauthbearer.*)")
        return {"sasl.username": found["username"], "sasl.password": found["password"]}
    if key == "ssl.endpoint.identification.algorithm" and not value:
        return {key: "none"}  # Java's empty value: no hostname check
    return {key: value}


@lru_cache(maxsize=8)
def load(path: str) -> dict[Role | None, dict[str, str]]:
    """The parsed file (read once per process); ``""`` means no file."""
    if not path:
        return parse("")
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise KafkaConfigError(f"cannot read the Kafka client config {path}: {e.strerror}") from None
    return parse(text, path)


def settings_for(path: str, role: Role) -> dict[str, str]:
    """What the file sets for one kind of client: its plain keys, then its role's (they win)."""
    by_role = load(path)
    merged = {k: v for k, v in by_role[None].items() if k != "bootstrap.servers"}
    merged.update(by_role[role])
    return merged


def bootstrap_of(path: str) -> str | None:
    """The file's ``bootstrap.servers``, if it names one."""
    return load(path)[None].get("bootstrap.servers")
