"""Which processor owns which log partition, and where its admin API answers.

A processor advertises its admin API in its consumer's ``client.id`` (``reprise-processor admin=<url>``,
after the operator's own ``consumer.client.id`` if the Kafka config file sets one, so the id still
begins with what the operator chose);
the processors' consumer group then says, member by member, which partitions each holds. Any process
(an ingress too) reads that with one ``DescribeGroups`` request, so a cluster-wide read needs no
registry of its own: ownership is exactly what Kafka assigned.
"""

from __future__ import annotations

import socket
import threading
import time

from confluent_kafka.admin import AdminClient

from reprise.engine.config import Config
from reprise.engine.kafka import new_admin

_PREFIX = "reprise-processor admin="


def advertised_admin_url(cfg: Config) -> str:
    """This process's admin API as other processes reach it: ``REPRISE_ADMIN_ADVERTISED_URL``, else
    the admin host (the machine's name when it listens on every interface) and port."""
    if cfg.admin_advertised_url:
        return cfg.admin_advertised_url.rstrip("/")
    host = cfg.admin_host if cfg.admin_host not in ("0.0.0.0", "::", "") else socket.gethostname()
    return f"http://{host}:{cfg.admin_port}"


def processor_client_id(cfg: Config, operators: str | None = None) -> str:
    """The processor consumer's ``client.id``: the operator's (if any), then the advertisement."""
    advert = _PREFIX + advertised_admin_url(cfg)
    return f"{operators} {advert}" if operators else advert


def advertised_in(client_id: str) -> str | None:
    """The admin URL a member's ``client.id`` advertises (None: not a processor of this kind)."""
    at = client_id.find(_PREFIX)
    return client_id[at + len(_PREFIX):] if at >= 0 else None


class Members:
    """The processors' group as last described: partition -> owner's admin URL (cached briefly)."""

    TTL_S = 2.0

    def __init__(self, cfg: Config) -> None:
        self._cfg = cfg
        self._group = f"{cfg.namespace}.processors"
        self._lock = threading.Lock()
        self._owners: dict[int, str] = {}
        self._at = -1e9
        self._admin: AdminClient | None = None

    def owners(self, fresh: bool = False) -> dict[int, str]:
        with self._lock:
            if fresh or time.monotonic() - self._at > self.TTL_S:
                self._owners = self._describe()
                self._at = time.monotonic()
            return dict(self._owners)

    def _describe(self) -> dict[int, str]:
        if self._admin is None:
            self._admin = new_admin(self._cfg)
        group = self._admin.describe_consumer_groups([self._group], request_timeout=10)[self._group].result(timeout=15)
        owners = {}
        for member in group.members:
            url = advertised_in(member.client_id)
            if url is None or member.assignment is None:
                continue
            for tp in member.assignment.topic_partitions:
                if tp.topic == self._cfg.log_topic:
                    owners[tp.partition] = url
        return owners
