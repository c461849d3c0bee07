"""Replies that need not cross Kafka: the ingress that waits for a result may live in the same
process as the partition that produced it (``reprise dev``, or any node running both roles).

An ingress registers its id here; the outbox shipper hands a Reply addressed to a registered id
straight to it and counts the entry as delivered, instead of producing it to the replies topic for
the ingress to consume back. Nothing durable is skipped: the result is in the partition's state
(and the outbox progress is still recorded); a Reply is only the wake-up call for a waiting HTTP
request, which dies with the process either way. Restate's ingress and partition processor talk
in-process on one node the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Deliver = Callable[[dict[str, Any]], None]
_LOCAL: dict[str, Deliver] = {}


def register(ingress_id: str, deliver: Deliver) -> None:
    _LOCAL[ingress_id] = deliver


def unregister(ingress_id: str) -> None:
    _LOCAL.pop(ingress_id, None)


def any_registered() -> bool:
    return bool(_LOCAL)


def deliver(reply: dict[str, Any]) -> bool:
    """Hand ``reply`` to its ingress if that lives in this process; False if it does not."""
    target = _LOCAL.get(reply["ingress_id"])
    if target is None:
        return False
    target(reply)
    return True
