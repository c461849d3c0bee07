"""The commands router's checks, ids and routing, and the reply topic allowlist, with no broker."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest

from reprise.engine.config import Config
from reprise.engine.ids import InvocationId, idempotent_invocation_id, workflow_run_id
from reprise.engine.partitioning import partition_for_key
from reprise.engine.registry import HandlerInfo, ServiceInfo
from reprise.engine.reply_topics import ReplyTopics
from reprise.ingress.commands import MAX_DELAY_MS, CommandRouter
from reprise.ingress.errors import IngressError
from reprise.partitions.leader.shipper import OutboxShipper
from reprise.schemas import codec
from tests.harness import ROOT

CFG = Config(namespace="ns")
SERVICES = {
    "Counter": ServiceInfo("Counter", "VIRTUAL_OBJECT", "dp", {"add": HandlerInfo("add", "EXCLUSIVE"),
                                                               "get": HandlerInfo("get", "SHARED")}),
    "Steps": ServiceInfo("Steps", "SERVICE", "dp", {"three": HandlerInfo("three", None)}),
    "Signup": ServiceInfo("Signup", "WORKFLOW", "dp", {"run": HandlerInfo("run", "WORKFLOW")}),
}


class FakeRegistry:
    def service(self, name: str) -> ServiceInfo | None:
        return SERVICES.get(name)


class FakeMessage:
    def __init__(self, value: bytes, partition: int = 2, offset: int = 40, ts: int = 1_000_000,
                 headers: list[tuple[str, bytes]] | None = None) -> None:
        self._value, self._partition, self._offset, self._ts, self._headers = value, partition, offset, ts, headers

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return 2, self._ts  # LogAppendTime

    def topic(self) -> str:
        return CFG.commands_topic

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers


def command(**fields: Any) -> dict[str, Any]:
    return {"service": "Counter", "handler": "add", "key": "c1", "body": b"1", "headers": {},
            "idempotency_key": None, "reply_to": None, "delay_ms": None, **fields}


def invoke(cmd: dict[str, Any], **where: Any) -> tuple[InvocationId, dict[str, Any]]:
    router = CommandRouter(CFG, FakeRegistry(), partitions=8)  # type: ignore[arg-type]
    msg = FakeMessage(codec.encode("InvokeCommand", cmd), **where)
    return router._invoke(router._decode(msg), msg)  # type: ignore[arg-type]


def test_an_idempotency_key_names_the_invocation_the_http_ingress_names() -> None:
    inv, record = invoke(command(idempotency_key="order-1"))
    assert inv == idempotent_invocation_id("Counter", "c1", "add", "order-1")
    assert invoke(command(idempotency_key="order-1"), partition=0, offset=7)[0] == inv  # wherever it was written
    assert inv.partition(8) == partition_for_key("c1", 8)  # the object's partition
    assert record["idempotency_key"] == "order-1" and record["handler_kind"] == "EXCLUSIVE"


def test_without_a_key_the_id_is_the_commands_position_so_reading_it_twice_appends_one_invocation() -> None:
    first, _ = invoke(command())
    assert invoke(command())[0] == first
    assert invoke(command(), offset=41)[0] != first
    assert invoke(command(), ts=1_000_001)[0] != first  # a recreated topic's offsets do not collide
    assert first.partition(8) == partition_for_key("c1", 8)
    plain, record = invoke(command(service="Steps", handler="three", key=None, body=b'"x"'))
    assert record["key"] is None and plain == invoke(command(service="Steps", handler="three", key=None))[0]


def test_a_workflow_run_has_one_id_per_workflow_id() -> None:
    inv, record = invoke(command(service="Signup", handler="run", key="w1", body=b"{}"))
    assert inv == workflow_run_id("Signup", "w1") and record["handler_kind"] == "WORKFLOW"


def test_the_invoke_record_carries_the_reply_to_headers_and_delay() -> None:
    inv, record = invoke(command(reply_to={"topic": "ns.replies.me", "correlation_id": "c-9"}, delay_ms=5000,
                                 headers={"x-trace": "t", "Idempotency-Key": "dropped"}), ts=1_234)
    assert record["reply_to"] == {"topic": "ns.replies.me", "ingress_id": "commands", "request_id": "c-9"}
    assert record["execute_at_ms"] == 1_234 + 5000 and record["created_ms"] == 1_234
    assert record["headers"] == [{"name": "x-trace", "value": "t"}]
    assert record["invocation_id"] == str(inv)
    codec.encode("Invoke", record)  # a valid log record


@pytest.mark.parametrize(("cmd", "code", "message"), [
    (command(service="Nope"), 404, "service 'Nope' not found"),
    (command(handler="nope"), 404, "handler 'Counter/nope' not found"),
    (command(key=None), 400, "virtual_object 'Counter' needs a key"),
    (command(key="  "), 400, "virtual_object 'Counter' needs a key"),
    (command(service="Steps", handler="three", key="k"), 400, "service 'Steps' is not keyed"),
    (command(idempotency_key=""), 400, "the idempotency key is empty"),
    (command(service="Signup", handler="run", key="w", idempotency_key="i"), 400, "not allowed on a workflow's run"),
    (command(service="Signup", handler="run", key="w", delay_ms=1), 400, "delay is not allowed on a workflow's run"),
    (command(delay_ms=-1), 400, "delay_ms -1 is out of range"),
    (command(delay_ms=MAX_DELAY_MS + 1), 400, "is out of range"),
    (command(body=b"{no", headers={"Content-Type": "application/json"}), 400, "malformed JSON body"),
])
def test_commands_the_router_refuses(cmd: dict[str, Any], code: int, message: str) -> None:
    with pytest.raises(IngressError) as e:
        invoke(cmd)
    assert e.value.code == code and message in e.value.message


def test_an_oversized_body_is_refused_with_413() -> None:
    router = CommandRouter(Config(namespace="ns", max_message_bytes=100), FakeRegistry(), partitions=8)  # type: ignore[arg-type]
    msg = FakeMessage(codec.encode("InvokeCommand", command(body=b"1" * 101)))
    with pytest.raises(IngressError) as e:
        router._invoke(router._decode(msg), msg)  # type: ignore[arg-type]
    assert e.value.code == 413


def test_malformed_bytes_and_other_kinds_are_refused() -> None:
    router = CommandRouter(CFG, FakeRegistry(), partitions=8)  # type: ignore[arg-type]
    with pytest.raises(IngressError, match="malformed command"):
        router._decode(FakeMessage(b"\xff\xff\xff"))  # type: ignore[arg-type]
    log_invoke = FakeMessage(codec.encode("InvokeCommand", command()), headers=codec.headers_for("InvokerEffects"))
    with pytest.raises(IngressError, match="unknown command kind"):
        router._decode(log_invoke)  # type: ignore[arg-type]
    named = FakeMessage(codec.encode("InvokeCommand", command()), headers=[("reprise-kind", b"Invoke"),
                                                                             ("reprise-version", b"1")])
    assert router._decode(named)["service"] == "Counter"  # type: ignore[arg-type]


def test_the_command_schema_is_plain_avro_any_library_reads() -> None:
    schema = fastavro.parse_schema(json.loads((ROOT / "schemas" / "command_invoke.v1.avsc").read_text()))
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, command(headers={"a": "b"}, delay_ms=3))
    assert codec.decode("InvokeCommand", 1, out.getvalue()) == command(headers={"a": "b"}, delay_ms=3)


def test_reply_topics_default_to_the_namespaces_replies_pattern() -> None:
    topics = ReplyTopics(CFG)
    assert topics.allows("ns.replies.orders") and topics.allows("ns.replies.a.b")
    for refused in ("ns.replies", "ns.deployments", "ns.log", "ns.changelog", "ns.commands", "ns.dead-letters",
                    "ns.subscriptions", "log", "replies", "other.replies.x", "__consumer_offsets", ""):
        assert not topics.allows(refused), refused


def test_configured_reply_topics_never_include_the_engines_own() -> None:
    topics = ReplyTopics(Config(namespace="ns", reply_topics="team-a.*, results"))
    assert topics.allows("team-a.x") and topics.allows("results") and not topics.allows("ns.replies.x")
    everything = ReplyTopics(Config(namespace="ns", reply_topics="*"))
    assert everything.allows("anything")
    assert not any(everything.allows(t) for t in ("ns.deployments", "ns.log", "ns.changelog", "log", "replies",
                                                  "__transaction_state"))


def test_the_leader_ships_replies_only_where_they_may_go() -> None:
    shipper = OutboxShipper.__new__(OutboxShipper)
    shipper._reply_topics = ReplyTopics(CFG)
    assert shipper.refusal("log", "CallCompleted") is None
    assert shipper.refusal("log", "Invoke") is None
    assert shipper.refusal("replies", "Reply") is None
    assert shipper.refusal("ns.replies.client", "Reply") is None
    for topic in ("log", "ns.deployments", "ns.log", "ns.changelog", "elsewhere"):
        assert shipper.refusal(topic, "Reply") is not None, topic
    assert shipper.refusal("ns.replies.client", "CallCompleted") is not None
