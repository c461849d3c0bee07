"""Clients waiting for an invocation's result (``attach``), bounded per ingress and per invocation.

Every client that attaches to the same invocation through this ingress shares one wait: one Attach
record, under a reply id fixed per (ingress, invocation). The partition keeps a waiter per reply id
it has not answered and drops a repeated one, so however often clients attach, leave and attach
again, an invocation holds at most one waiter per ingress process for them. A client that
disconnects (its handler is cancelled) or times out leaves the shared wait; when the last one
leaves, the ingress stops waiting (the partition's waiter is answered, to nobody, at completion).

Past ``max_attach_waiters`` clients on this ingress, or ``max_attach_waiters_per_invocation`` on
one invocation, an attach is refused with 429 and ``Retry-After``, as the ingress's admission
control refuses calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from prometheus_client import Gauge

from reprise.ingress.errors import IngressError

Reply = dict[str, Any]
StartWait = Callable[[str], Coroutine[Any, Any, Reply]]  # produce the Attach under this reply id, await the reply
ATTACH_WAITERS = Gauge("reprise_attach_waiters", "Clients waiting on attach at this ingress")


class _SharedWait:
    __slots__ = ("task", "clients")

    def __init__(self, task: asyncio.Task[Reply]) -> None:
        self.task = task
        self.clients = 0


class AttachWaiters:
    def __init__(self, max_total: int, max_per_invocation: int) -> None:
        self.max_total, self.max_per_invocation = max_total, max_per_invocation
        self.total = 0
        self._waits: dict[str, _SharedWait] = {}

    def waiting_on(self, invocation_id: str) -> int:
        wait = self._waits.get(invocation_id)
        return wait.clients if wait is not None else 0

    async def wait(self, invocation_id: str, start: StartWait) -> Reply:
        """The invocation's reply, shared with every other client waiting for it here."""
        wait = self._waits.get(invocation_id)
        if self.total >= self.max_total:
            raise IngressError(429, f"overloaded: {self.total} clients attached on this ingress; retry later",
                               {"retry-after": "1"})
        if wait is not None and wait.clients >= self.max_per_invocation:
            raise IngressError(429, f"{wait.clients} clients already attached to {invocation_id}; retry later",
                               {"retry-after": "1"})
        if wait is None:
            wait = self._waits[invocation_id] = _SharedWait(
                asyncio.get_running_loop().create_task(start(f"attach-{invocation_id}")))
            wait.task.add_done_callback(lambda _t: self._ended(invocation_id, wait))
        wait.clients += 1
        self.total += 1
        ATTACH_WAITERS.set(self.total)
        try:
            return await asyncio.shield(wait.task)  # one client leaving does not end the others' wait
        finally:
            wait.clients -= 1
            self.total -= 1
            ATTACH_WAITERS.set(self.total)
            if wait.clients == 0 and not wait.task.done():
                wait.task.cancel()  # nobody is left: stop waiting (LogClient.request forgets the reply id)
                if self._waits.get(invocation_id) is wait:  # a client coming now starts a new wait
                    del self._waits[invocation_id]

    def _ended(self, invocation_id: str, wait: _SharedWait) -> None:
        if self._waits.get(invocation_id) is wait:
            del self._waits[invocation_id]
        if not wait.task.cancelled():
            wait.task.exception()  # retrieved: its clients got it; nobody else is to be told
