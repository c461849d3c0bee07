"""The commands router: Kafka-native clients write commands to ``<ns>.commands``; the engine checks
each one and appends it to the log, so the log itself stays the engine's.

A command is one Avro record (schemas/command_invoke.v1.avsc). The router does with it what the HTTP
ingress does with a request, through the same code (ingress/invocation.py): it checks the target
against the registry, derives the invocation id (from the idempotency key, the workflow id, or, for
anything else, the command's own position on the commands topic, so reading a command twice appends
the same invocation twice and apply() keeps one), and produces the Invoke to the log partition of
that id. A command it cannot accept is copied to the dead-letter topic with the reason, and if it
asked for a reply on an allowed topic (engine/reply_topics.py), a Reply carrying the failure goes there.

Routers share the commands topic as one consumer group; a router commits a command's offset only
after Kafka acknowledged what it produced for it (the Invoke, or the dead letter), so a crash
re-reads rather than loses. The router runs with the HTTP ingress (``reprise dev`` and ``reprise
ingress``): like it, it holds no partition state and scales out with it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import Counter

from reprise.engine.config import Config
from reprise.engine.consumed import ConsumedRecord
from reprise.engine.faults import crash_point
from reprise.engine.ids import InvocationId
from reprise.engine.kafka import (
    log_partitions,
    new_consumer,
    next_batch,
    produce_encoded,
    produce_retrying,
    producer_config,
)
from reprise.engine.registry import Registry
from reprise.engine.reply_topics import ReplyTopics
from reprise.ingress.errors import IngressError
from reprise.ingress.invocation import check_body, handler_headers, invocation_id, invoke_record, log_key, target
from reprise.ingress.log_client import ENVELOPE_BYTES
from reprise.schemas import codec
from reprise.schemas.records import Invoke

log = logging.getLogger(__name__)

COMMAND_KIND = "InvokeCommand"  # the codec's name for schemas/command_invoke.v1.avsc
REPLY_INGRESS_ID = "commands"  # the ingress_id of every Reply to a command
MAX_DELAY_MS = 365 * 86_400_000  # a command's delay_ms may be at most a year
COMMANDS = Counter("reprise_commands_total", "Commands read from the commands topic, by what became of them "
                   "(routed: appended to the log; refused: dead-lettered)", ["outcome"])


# Kafka errors that routing the same record again cannot cure
_PERMANENT = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD, KafkaError.RECORD_LIST_TOO_LARGE,
                        KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.UNKNOWN_TOPIC_OR_PART,
                        KafkaError._UNKNOWN_TOPIC, KafkaError._INVALID_ARG})


@dataclass
class _Outcome:
    """What became of one command: records awaiting Kafka's ack, and the errors Kafka reported."""

    msg: ConsumedRecord
    pending: int = 0
    errors: list[KafkaError] = field(default_factory=list)
    refused: bool = False  # its dead letter (not an Invoke) was produced
    kafka_refused: str = ""  # Kafka refused its Invoke for good: dead-letter it instead

    def delivered(self, err: KafkaError | None, _msg: Message) -> None:
        self.pending -= 1
        if err is not None:
            self.errors.append(err)

    def settle(self) -> bool:
        """Whether the command is done with (acknowledged, or refused by Kafka for good)."""
        if not self.errors and not self.pending:
            return True
        permanent = [e for e in self.errors if e.code() in _PERMANENT]
        if permanent and not self.refused:
            self.kafka_refused = permanent[0].str()
            return False
        if permanent:  # a dead letter or error Reply Kafka will never take: nothing more can be done
            log.error("command %s/%d/%d: %s; skipped", self.msg.topic(), self.msg.partition(), self.msg.offset(),
                      permanent[0].str())
            return True
        return False


class CommandRouter:
    def __init__(self, cfg: Config, registry: Registry, partitions: int | None = None) -> None:
        self._cfg = cfg
        self._registry = registry
        self._partitions = partitions or log_partitions(cfg)
        self._reply_topics = ReplyTopics(cfg)
        self._topic_seen: dict[str, tuple[bool, float]] = {}  # reply topic -> (exists, checked at)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commands", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._serve()
            except Exception:  # noqa: BLE001 - what was not committed is read again: ids make that harmless
                log.exception("commands router failed; starting again in 1 s")
                self._stop.wait(1.0)

    def _serve(self) -> None:
        consumer = new_consumer(self._cfg, **{"group.id": f"{self._cfg.namespace}.commands-router",
                                              "session.timeout.ms": self._cfg.group_session_timeout_ms,
                                              "fetch.wait.max.ms": 50})
        producer = Producer(producer_config(self._cfg))
        consumer.subscribe([self._cfg.commands_topic])
        try:
            while not self._stop.is_set():
                msgs = [m for m in next_batch(consumer, 500, 0.2) if m.error() is None]
                if msgs:
                    self._route_batch(consumer, producer, msgs)
        finally:
            consumer.close()
            producer.flush(5)

    def _route_batch(self, consumer: Consumer, producer: Producer, msgs: list[ConsumedRecord]) -> None:
        """Route every command, wait for Kafka's acks (routing again what failed), then commit."""
        todo = [_Outcome(m) for m in msgs]
        while True:
            for outcome in todo:
                outcome.errors.clear()
                outcome.pending = 0
                self.route(producer, consumer, outcome)
            while producer.flush(1.0) != 0 and not self._stop.is_set():
                pass
            failed = [o for o in todo if not o.settle()]
            for o in failed:
                log.warning("command %s/%d/%d not acknowledged by Kafka (%s); routing it again",
                            o.msg.topic(), o.msg.partition(), o.msg.offset(), o.errors[0] if o.errors else "timeout")
            if not failed or self._stop.is_set():
                break
            if any(not o.kafka_refused for o in failed):  # else: dead-letter those at once
                self._stop.wait(1.0)
            todo = failed
        commit: dict[int, int] = {}
        held = {o.msg.partition(): o.msg.offset() for o in reversed(failed)}  # the first unrouted one
        for m in msgs:
            p = m.partition()
            if p not in held:
                commit[p] = max(commit.get(p, 0), m.offset() + 1)
        offsets = [TopicPartition(self._cfg.commands_topic, p, o) for p, o in {**commit, **held}.items()]
        crash_point("commands.before_commit")  # tests only: the window between the acks and the commit
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as e:  # noqa: BLE001 - e.g. the partitions moved: their new router reads them again
            log.warning("commands router: commit failed (%s); those commands are routed again", e)

    def route(self, producer: Producer, consumer: Consumer, outcome: _Outcome) -> None:
        """Produce what one command becomes: its Invoke, or its dead letter and error Reply."""
        m = outcome.msg
        reply_to: dict[str, str] | None = None
        try:
            command = self._decode(m)
            self._check_reply_to(consumer, command["reply_to"])  # a refusal here gets no Reply
            reply_to = command["reply_to"]
            inv, record = self._invoke(command, m)
            if outcome.kafka_refused:
                raise IngressError(500, f"Kafka refused the command's Invoke: {outcome.kafka_refused}")
            value = codec.encode("Invoke", record)
            limit = self._cfg.max_message_bytes + ENVELOPE_BYTES
            if len(value) > limit:
                raise IngressError(413, f"the command's Invoke weighs {len(value)} bytes, more than the log "
                                        f"takes ({limit}: REPRISE_MAX_MESSAGE_BYTES plus {ENVELOPE_BYTES})")
        except IngressError as e:
            self._refuse(producer, outcome, e, reply_to)
            return
        except KafkaException:
            raise  # transient (metadata): the batch is routed again, nothing committed
        except Exception as e:  # noqa: BLE001 - one command must not stop the others: dead-letter it
            log.exception("command %s/%d/%d: unexpected error", m.topic(), m.partition(), m.offset())
            self._refuse(producer, outcome, IngressError(500, f"cannot route the command: {e!r}"), reply_to)
            return
        COMMANDS.labels("routed").inc()
        outcome.pending += 1
        produce_encoded(producer, self._cfg.log_topic, inv.partition(self._partitions), "Invoke", value,
                        key=log_key(record["key"]), on_delivery=outcome.delivered)

    def _decode(self, m: ConsumedRecord) -> dict[str, Any]:
        headers = dict(m.headers() or [])
        kind, version = headers.get(codec.KIND_HEADER), headers.get(codec.VERSION_HEADER)
        if (kind, version) not in ((None, None), (b"Invoke", b"1")):
            raise IngressError(400, f"unknown command kind {kind!r} version {version!r}: the commands topic "
                                    "takes Invoke version 1 (schemas/command_invoke.v1.avsc) only")
        try:
            return codec.decode(COMMAND_KIND, 1, m.value() or b"")
        except codec.SchemaError as e:
            raise IngressError(400, f"malformed command: {e}") from None

    def _check_reply_to(self, consumer: Consumer, reply_to: dict[str, str] | None) -> None:
        if reply_to is None:
            return
        refusal = self._reply_topics.refusal(reply_to["topic"])
        if refusal is None and not self._topic_exists(consumer, reply_to["topic"]):
            refusal = f"reply topic {reply_to['topic']!r} does not exist"
        if refusal is not None:
            raise IngressError(400, f"bad reply_to: {refusal}")

    def _topic_exists(self, consumer: Consumer, topic: str) -> bool:
        """Whether the topic exists (a yes is kept for a minute, a no for five seconds)."""
        seen = self._topic_seen.get(topic)
        now = time.monotonic()
        if seen is not None and now - seen[1] < (60.0 if seen[0] else 5.0):
            return seen[0]
        found = consumer.list_topics(topic, timeout=10).topics.get(topic)
        exists = found is not None and found.error is None and bool(found.partitions)
        if len(self._topic_seen) > 4096:
            self._topic_seen.clear()
        self._topic_seen[topic] = (exists, now)
        return exists

    def _invoke(self, command: dict[str, Any], m: ConsumedRecord) -> tuple[InvocationId, Invoke]:
        """The Invoke a valid command becomes (IngressError if it is not valid)."""
        key, handler = command["key"], command["handler"]
        svc = target(self._registry, command["service"], key, handler)
        named = [(k.lower(), v) for k, v in command["headers"].items()]
        headers = handler_headers(named)
        check_body(command["body"], next((v for k, v in named if k == "content-type"), ""))
        if len(command["body"]) > self._cfg.max_message_bytes:
            raise IngressError(413, f"the body weighs {len(command['body'])} bytes, more than "
                                    f"REPRISE_MAX_MESSAGE_BYTES ({self._cfg.max_message_bytes})")
        appended_ms = m.timestamp()[1]  # the broker's (LogAppendTime): the same whenever the command is read
        if appended_ms <= 0:
            raise IngressError(400, "the command has no timestamp")
        delay = command["delay_ms"]
        if delay is not None:
            if svc.handlers[handler].ty == "WORKFLOW":
                raise IngressError(400, "delay is not allowed on a workflow's run")
            if not 0 <= delay <= MAX_DELAY_MS:
                raise IngressError(400, f"delay_ms {delay} is out of range: expected 0 to {MAX_DELAY_MS}")

        def from_position() -> InvocationId:  # the same command read again gets the same id
            where = (m.partition(), m.offset(), appended_ms)
            return InvocationId.derived(key if key is not None else f"{m.topic()}/{where}", "command", *where)

        inv = invocation_id(svc, key, handler, command["idempotency_key"], from_position)
        reply_to = command["reply_to"]
        return inv, invoke_record(
            inv, svc, key, handler, command["body"], headers, command["idempotency_key"],
            None if delay is None else appended_ms + delay, appended_ms,
            None if reply_to is None else {"topic": reply_to["topic"], "ingress_id": REPLY_INGRESS_ID,
                                           "request_id": reply_to["correlation_id"]})

    def _refuse(self, producer: Producer, outcome: _Outcome, e: IngressError,
                reply_to: dict[str, str] | None) -> None:
        """The dead letter, and the error Reply when the command asked for one where it may have it."""
        m = outcome.msg
        outcome.refused = True
        COMMANDS.labels("refused").inc()
        log.warning("command %s/%d/%d dead-lettered: %s", m.topic(), m.partition(), m.offset(), e.message)
        headers = list(m.headers() or []) + [
            ("reprise-dead-letter-reason", f"{e.code} {e.message}".encode()),
            ("reprise-source", f"{m.topic()}/{m.partition()}/{m.offset()}".encode())]
        outcome.pending += 1
        produce_retrying(producer, self._cfg.dead_letter_topic, value=m.value(), key=m.key(), headers=headers,
                         on_delivery=outcome.delivered)
        if reply_to is None:
            return
        value = codec.encode("Reply", {"ingress_id": REPLY_INGRESS_ID, "request_id": reply_to["correlation_id"],
                                       "invocation_id": "", "value": None,
                                       "failure": {"code": e.code, "message": e.message}, "source": None})
        outcome.pending += 1
        produce_retrying(producer, reply_to["topic"], value=value, key=reply_to["correlation_id"].encode(),
                         headers=codec.headers_for("Reply"), on_delivery=outcome.delivered)

