"""Attach waiters: shared per invocation on an ingress (ingress/attach.py), bounded there (429 with
Retry-After) and in the invocation's row (partitions/core/apply/attach.py), gone when their clients are."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reprise.ingress.attach import AttachWaiters
from reprise.ingress.errors import IngressError
from reprise.partitions.core.apply import attach as attach_apply
from reprise.partitions.core.apply.attach import MAX_ATTACHED_REPLIES
from tests.unit.apply_helpers import inv_on, invoke, new_partition, outbox_records, output


class FakeLog:
    """Stands for LogClient.request: each started wait is one Attach record, answered by ``answer``."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.forgotten: list[str] = []

    async def start(self, request_id: str) -> dict[str, Any]:
        self.started.append(request_id)
        fut = self.waiting[request_id] = asyncio.get_running_loop().create_future()
        try:
            return await fut
        finally:
            self.forgotten.append(request_id)
            del self.waiting[request_id]

    def answer(self, request_id: str, value: bytes) -> None:
        self.waiting[request_id].set_result({"invocation_id": "inv", "value": value, "failure": None})


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_clients_of_one_invocation_share_one_attach_and_all_get_the_result() -> None:
    async def main() -> None:
        log, waiters = FakeLog(), AttachWaiters(100, 10)
        clients = [asyncio.create_task(waiters.wait("inv_a", log.start)) for _ in range(5)]
        await settle()
        assert log.started == ["attach-inv_a"] and waiters.waiting_on("inv_a") == 5
        log.answer("attach-inv_a", b"42")
        assert [r["value"] for r in await asyncio.gather(*clients)] == [b"42"] * 5
        assert waiters.total == 0 and waiters.waiting_on("inv_a") == 0
    asyncio.run(main())


def test_past_the_bounds_an_attach_is_refused_with_429_and_retry_after() -> None:
    async def main() -> None:
        log, waiters = FakeLog(), AttachWaiters(4, 3)
        held = [asyncio.create_task(waiters.wait("inv_a", log.start)) for _ in range(3)]
        await settle()
        with pytest.raises(IngressError) as per_invocation:
            await asyncio.wait_for(waiters.wait("inv_a", log.start), 5)
        held.append(asyncio.create_task(waiters.wait("inv_b", log.start)))
        await settle()
        with pytest.raises(IngressError) as per_ingress:
            await asyncio.wait_for(waiters.wait("inv_c", log.start), 5)
        for refused in (per_invocation.value, per_ingress.value):
            assert refused.code == 429 and refused.headers == {"retry-after": "1"}
        assert "already attached to inv_a" in per_invocation.value.message
        assert "4 clients attached on this ingress" in per_ingress.value.message
        for t in held:
            t.cancel()
        await settle()
        assert waiters.total == 0
    asyncio.run(main())


def test_clients_that_go_away_free_their_places_and_the_last_one_ends_the_wait() -> None:
    async def main() -> None:
        log, waiters = FakeLog(), AttachWaiters(100, 2)
        first, second = (asyncio.create_task(waiters.wait("inv_a", log.start)) for _ in range(2))
        await settle()
        first.cancel()  # a client disconnected (the HTTP server cancels its handler)
        await settle()
        assert waiters.waiting_on("inv_a") == 1 and log.forgotten == []  # the other still waits
        third = asyncio.create_task(waiters.wait("inv_a", log.start))  # the freed place is usable
        await settle()
        second.cancel()
        third.cancel()
        await settle()
        assert waiters.total == 0 and waiters.waiting_on("inv_a") == 0
        assert log.forgotten == ["attach-inv_a"] and log.waiting == {}  # nothing kept for nobody
        again = asyncio.create_task(waiters.wait("inv_a", log.start))  # a new client: a new wait
        await settle()
        log.answer("attach-inv_a", b"late")
        assert (await again)["value"] == b"late" and log.started == ["attach-inv_a", "attach-inv_a"]
    asyncio.run(main())


def test_a_failed_wait_fails_its_clients_and_is_not_reused() -> None:
    async def main() -> None:
        waiters = AttachWaiters(100, 10)
        calls = 0

        async def unavailable(_request_id: str) -> dict[str, Any]:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0)
            raise IngressError(503, "log unavailable")

        results = await asyncio.gather(*(waiters.wait("inv_a", unavailable) for _ in range(3)),
                                       return_exceptions=True)
        assert calls == 1 and all(isinstance(r, IngressError) and r.code == 503 for r in results)
        with pytest.raises(IngressError):
            await waiters.wait("inv_a", unavailable)
        assert calls == 2 and waiters.total == 0
    asyncio.run(main())


def test_an_invocation_keeps_a_bounded_number_of_waiters_and_the_oldest_gives_way(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert MAX_ATTACHED_REPLIES == 1_000
    monkeypatch.setattr(attach_apply, "MAX_ATTACHED_REPLIES", 20)  # the same code path, a smaller row
    p = new_partition()
    inv = inv_on(0)
    invoke(p, inv)
    targets = [{"topic": "replies", "ingress_id": "ing2", "request_id": f"call-{i}"}
               for i in range(22)]
    for t in targets:  # the same idempotent call repeated while it runs, each time by a client that left
        invoke(p, inv, reply_to=t)
        p.feed("Attach", {"invocation_id": inv, "mode": "attach", "reply_to": t})  # kept once
    assert p.status(inv)["attached_replies"] == targets[2:]
    gave_way = [r for k, r in outbox_records(p) if k == "Reply"]
    assert [r["request_id"] for r in gave_way] == ["call-0", "call-1"]
    assert all(r["failure"]["code"] == 503 and "attach again" in r["failure"]["message"] for r in gave_way)
    p.effects(inv, 1, [output(b'"done"')], {})
    answered = [r["request_id"] for k, r in outbox_records(p) if k == "Reply" and r["value"] == b'"done"']
    assert sorted(answered) == sorted([inv] + [t["request_id"] for t in targets[2:]])
