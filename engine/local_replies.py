"""Replies that need not cross Kafka: the ingress that waits for a result may live in the same
process as the partition that produced it (``reprise dev``, or any node running both roles).

The composition root (deploy/runtime.py) makes one ``LocalReplies`` per process and hands it to both
sides: an ingress registers its id on it, and the outbox shipper hands a Reply addressed to a
registered id straight to it and counts the entry as delivered, instead of producing it to the
replies topic for the ingress to consume back. Nothing durable is skipped: the result is in the
partition's state (and the outbox progress is still recorded); a Reply is only the wake-up call for
a waiting HTTP request, which dies with the process either way. Restate's ingress and partition
processor talk in-process on one node the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Deliver = Callable[[dict[str, Any]], None]


class LocalReplies:
    """The ingresses of this process, by id: where a partition in the same process hands replies."""

    def __init__(self) -> None:
        self._local: dict[str, Deliver] = {}

    def register(self, ingress_id: str, deliver: Deliver) -> None:
        self._local[ingress_id] = deliver

    def unregister(self, ingress_id: str) -> None:
        self._local.pop(ingress_id, None)

    def any_registered(self) -> bool:
        return bool(self._local)

    def deliver(self, reply: dict[str, Any]) -> bool:
        """Hand ``reply`` to its ingress if that lives in this process; False if it does not."""
        target = self._local.get(reply["ingress_id"])
        if target is None:
            return False
        target(reply)
        return True
