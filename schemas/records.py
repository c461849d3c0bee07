"""Typed faces of the Avro records and stored rows (TypedDicts): written by typegen.py from the
.avsc files; do not edit. At run time a record is a plain dict."""

from __future__ import annotations

from typing import Literal, TypedDict  # noqa: F401 - Literal where a schema has an enum


class Failure(TypedDict):
    """A terminal failure: an HTTP-like code and a message."""

    code: int
    message: str


class Source(TypedDict):
    """Sender partition and its outbox sequence: receivers drop duplicates."""

    partition: int
    seq: int


class Caller(TypedDict):
    """The invocation waiting for this one's result, and its completion id."""

    invocation_id: str
    completion_id: int


class ReplyTo(TypedDict):
    """Where the result goes: a reply topic and the request it answers."""

    topic: str
    ingress_id: str
    request_id: str


class Header(TypedDict):
    """The Header record."""

    name: str
    value: str


class AdminCommandV1(TypedDict):
    """An operator's command for one invocation: cancel, kill, purge, pause or resume."""

    invocation_id: str
    command: str
    reply_to: ReplyTo | None


class AdminCommand(TypedDict):
    """An operator's command for one invocation: cancel, kill, purge, purge-journal, pause, resume or
    restart-as-new. v2 added restart_from and restart_deployment."""

    invocation_id: str
    command: str
    reply_to: ReplyTo | None
    restart_from: int | None
    restart_deployment: str | None


class Attach(TypedDict):
    """Someone wants an invocation's result: 'attach' waits for it, 'output' answers now (470 while running)."""

    invocation_id: str
    mode: str
    reply_to: ReplyTo


class CallCompleted(TypedDict):
    """A child invocation ended: its result, routed to the caller's partition."""

    invocation_id: str
    completion_id: int
    value: bytes | None
    failure: Failure | None
    source: Source | None


class Deployment(TypedDict):
    """A registered service deployment and its discovered manifest (compacted topic keyed by id)."""

    id: str
    uri: str
    use_http_11: bool
    additional_headers: dict[str, str]
    manifest_json: str
    created_ms: int


class InvocationStatusV1(TypedDict):
    """One invocation's row in a partition's store: where it is in its lifecycle and what it waits for."""

    invocation_id: str
    service: str
    handler: str
    key: str | None
    handler_kind: str | None
    status: str
    attempt: int
    journal_length: int
    completed_ids: list[int]
    signal_ids: list[int]
    named_signals: list[str]
    waiting_completions: list[int]
    waiting_signals: list[int]
    waiting_named: list[str]
    deployment_id: str | None
    idempotency_key: str | None
    caller: Caller | None
    reply_to: ReplyTo | None
    attached_callers: list[Caller]
    attached_replies: list[ReplyTo]
    created_ms: int
    modified_ms: int
    failures_since_entry: int
    last_entry_ms: int
    next_retry_ms: int | None
    last_failure: Failure | None
    output_index: int | None
    completed_ms: int | None
    result_value: bytes | None
    result_failure: Failure | None


class InvocationStatusV2(TypedDict):
    """One invocation's row in a partition's store: where it is in its lifecycle and what it waits for. v2
    added journal_retention_ms and restarted_from."""

    invocation_id: str
    service: str
    handler: str
    key: str | None
    handler_kind: str | None
    status: str
    attempt: int
    journal_length: int
    completed_ids: list[int]
    signal_ids: list[int]
    named_signals: list[str]
    waiting_completions: list[int]
    waiting_signals: list[int]
    waiting_named: list[str]
    deployment_id: str | None
    idempotency_key: str | None
    caller: Caller | None
    reply_to: ReplyTo | None
    attached_callers: list[Caller]
    attached_replies: list[ReplyTo]
    created_ms: int
    modified_ms: int
    failures_since_entry: int
    last_entry_ms: int
    next_retry_ms: int | None
    last_failure: Failure | None
    output_index: int | None
    completed_ms: int | None
    result_value: bytes | None
    result_failure: Failure | None
    journal_retention_ms: int | None
    restarted_from: str | None


class InvocationStatus(TypedDict):
    """One invocation's row in a partition's store: where it is in its lifecycle and what it waits for. v2
    added journal_retention_ms and restarted_from, v3 completion_retention_ms and sender_id."""

    invocation_id: str
    service: str
    handler: str
    key: str | None
    handler_kind: str | None
    status: str
    attempt: int
    journal_length: int
    completed_ids: list[int]
    signal_ids: list[int]
    named_signals: list[str]
    waiting_completions: list[int]
    waiting_signals: list[int]
    waiting_named: list[str]
    deployment_id: str | None
    idempotency_key: str | None
    caller: Caller | None
    reply_to: ReplyTo | None
    attached_callers: list[Caller]
    attached_replies: list[ReplyTo]
    created_ms: int
    modified_ms: int
    failures_since_entry: int
    last_entry_ms: int
    next_retry_ms: int | None
    last_failure: Failure | None
    output_index: int | None
    completed_ms: int | None
    result_value: bytes | None
    result_failure: Failure | None
    journal_retention_ms: int | None
    restarted_from: str | None
    completion_retention_ms: int | None
    sender_id: str | None


class InvokeV1(TypedDict):
    """A command to start an invocation. Written by the ingress, by partitions (calls), or by any Kafka producer."""

    invocation_id: str | None
    service: str
    handler: str
    key: str | None
    handler_kind: str | None
    input: bytes
    headers: list[Header]
    idempotency_key: str | None
    caller: Caller | None
    reply_to: ReplyTo | None
    ack_to: ReplyTo | None
    execute_at_ms: int | None
    created_ms: int
    source: Source | None


class Invoke(TypedDict):
    """A command to start an invocation. Written by the ingress, by partitions (calls), or by any Kafka producer."""

    invocation_id: str | None
    service: str
    handler: str
    key: str | None
    handler_kind: str | None
    input: bytes
    headers: list[Header]
    idempotency_key: str | None
    caller: Caller | None
    reply_to: ReplyTo | None
    ack_to: ReplyTo | None
    execute_at_ms: int | None
    created_ms: int
    source: Source | None
    sender_id: str | None


class InvokeCommandReplyTo(TypedDict):
    """The ReplyTo record."""

    topic: str
    correlation_id: str


class InvokeCommand(TypedDict):
    """A command on <namespace>.commands, the topic Kafka-native clients write: invoke a handler. The
    engine validates it, derives the invocation id and the log partition, and appends it to the log.
    Self-contained: no other schema is needed to write it."""

    service: str
    handler: str
    key: str | None
    body: bytes
    headers: dict[str, str]
    idempotency_key: str | None
    reply_to: InvokeCommandReplyTo | None
    delay_ms: int | None


class Suspended(TypedDict):
    """The Suspended record."""

    completions: list[int]
    signals: list[int]
    named_signals: list[str]


class AttemptFailed(TypedDict):
    """The AttemptFailed record."""

    code: int
    message: str
    retryable: bool
    next_retry_delay_ms: int | None
    on_exhausted: str | None


class Ended(TypedDict):
    """The Ended record."""

    pass


class InvokerEffectsV1(TypedDict):
    """Everything one attempt produced: new journal entries (framed protocol messages) and how it ended."""

    invocation_id: str
    attempt: int
    epoch: int
    timestamp_ms: int
    deployment_id: str | None
    entries: list[bytes]
    completion_retention_ms: int | None
    handler_kinds: dict[str, str]
    outcome: Suspended | AttemptFailed | Ended


class Progress(TypedDict):
    """a streaming attempt goes on: its notifications are sent to it once applied"""

    proposed: list[int]


class InvokerEffectsV2(TypedDict):
    """What one attempt produced: new journal entries (framed protocol messages) and how it ended, or
    (Progress) the entries a streaming attempt produced so far. v2 added Progress."""

    invocation_id: str
    attempt: int
    epoch: int
    timestamp_ms: int
    deployment_id: str | None
    entries: list[bytes]
    completion_retention_ms: int | None
    handler_kinds: dict[str, str]
    outcome: Suspended | AttemptFailed | Ended | Progress


class InvokerEffects(TypedDict):
    """What one attempt produced: new journal entries (framed protocol messages) and how it ended, or
    (Progress) the entries a streaming attempt produced so far. v2 added Progress; v3 added
    journal_retention_ms."""

    invocation_id: str
    attempt: int
    epoch: int
    timestamp_ms: int
    deployment_id: str | None
    entries: list[bytes]
    completion_retention_ms: int | None
    journal_retention_ms: int | None
    handler_kinds: dict[str, str]
    outcome: Suspended | AttemptFailed | Ended | Progress


class KafkaCluster(TypedDict):
    """A Kafka cluster subscriptions may read from, registered by name (on the subscriptions topic, keyed
    'kafka-cluster:<name>'; a tombstone deletes)."""

    name: str
    properties: dict[str, str]
    created_ms: int


class LeaderEpochV1(TypedDict):
    """A processor claims a partition. Records carrying an older epoch change nothing afterwards."""

    partition: int
    epoch: int
    owner: str
    timestamp_ms: int


class LeaderEpoch(TypedDict):
    """A processor claims a partition. Records carrying an older epoch change nothing afterwards. v2 added
    the claim its writer saw holding when it made this one (seen_owner empty: none)."""

    partition: int
    epoch: int
    owner: str
    timestamp_ms: int
    seen_epoch: int
    seen_owner: str


class OutboxEntry(TypedDict):
    """A record this partition owes another partition or a reply topic; shipped by the leader, dropped once
    acknowledged."""

    seq: int
    topic: str
    partition: int
    kind: str
    value: bytes


class OutboxShipped(TypedDict):
    """The leader's outbox entries up to this sequence were acknowledged by Kafka and may be dropped."""

    epoch: int
    up_to_seq: int


class Reply(TypedDict):
    """The result of an invocation, for whoever asked (an ingress, or a Kafka client's reply topic)."""

    ingress_id: str
    request_id: str
    invocation_id: str
    value: bytes | None
    failure: Failure | None
    source: Source | None


class RetentionSweep(TypedDict):
    """The leader asks the partition to forget plain invocations that completed before before_ms (their
    retention ran out). Invocations with an idempotency key and workflow runs keep their own cleanup
    timers."""

    epoch: int
    before_ms: int
    limit: int


class Schedule(TypedDict):
    """A durable cron schedule and where it is: its next tick has a timer of kind 'schedule' unless it is paused."""

    schedule_id: str
    cron: str
    timezone: str
    catch_up: str
    service: str
    handler: str
    key: str | None
    handler_kind: str | None
    input: bytes
    paused: bool
    created_ms: int
    next_tick_ms: int | None
    timer_key: str | None
    fired: int
    skipped: int
    last_tick_ms: int | None
    last_fired_ms: int | None
    last_invocation_id: str | None


class ScheduleCommand(TypedDict):
    """An operator's command for one durable cron schedule, on the partition of its id: create, pause,
    resume or delete."""

    schedule_id: str
    op: str
    cron: str | None
    timezone: str
    catch_up: str
    service: str | None
    handler: str | None
    key: str | None
    handler_kind: str | None
    input: bytes
    reply_to: ReplyTo | None


class Signal(TypedDict):
    """A signal for an invocation's journal: an awakeable's result (idx >= 17), cancel (idx 1), or a named signal."""

    invocation_id: str
    idx: int | None
    name: str | None
    value: bytes | None
    failure: Failure | None
    source: Source | None


class StateMutation(TypedDict):
    """An operator's replacement of a virtual object's (or workflow's) whole state, on its key's partition."""

    service: str
    key: str
    version: str | None
    state: dict[str, bytes]
    reply_to: ReplyTo | None


class StoreDelta(TypedDict):
    """The writes one apply batch made to a partition's store: the changelog
    (partitions/state/changelog.py). Applied to a store whose applied offset is base_offset, they bring
    it to last_offset, exactly as replaying the log's records base_offset+1..last_offset through apply()
    would."""

    partition: int
    base_offset: int
    last_offset: int
    sizes: bytes
    data: bytes


class SubscriptionV1(TypedDict):
    """Every record of a Kafka topic invokes a handler (compacted topic keyed by id; a tombstone deletes)."""

    id: str
    source_topic: str
    service: str
    handler: str
    created_ms: int


class SubscriptionV2(TypedDict):
    """Every record of a Kafka topic invokes a handler (compacted topic keyed by id; a tombstone deletes)."""

    id: str
    source_topic: str
    service: str
    handler: str
    created_ms: int
    cluster: str | None


class Subscription(TypedDict):
    """Every record of a Kafka topic invokes a handler (compacted topic keyed by id; a tombstone deletes)."""

    id: str
    source_topic: str
    service: str
    handler: str
    created_ms: int
    cluster: str | None
    options: dict[str, str]


class Timer(TypedDict):
    """A durable timer: what happens when it fires."""

    kind: str
    invocation_id: str
    fire_at_ms: int
    completion_id: int


class TimerFired(TypedDict):
    """The leader's timer service saw a durable timer come due. apply() looks the timer up by key; a fired
    one is gone."""

    timer_key: str
    epoch: int
    timestamp_ms: int


# (kind, version) -> the TypedDict of its records
BY_KIND: dict[tuple[str, int], type] = {
    ('AdminCommand', 1): AdminCommandV1,
    ('AdminCommand', 2): AdminCommand,
    ('Attach', 1): Attach,
    ('CallCompleted', 1): CallCompleted,
    ('Deployment', 1): Deployment,
    ('InvocationStatus', 1): InvocationStatusV1,
    ('InvocationStatus', 2): InvocationStatusV2,
    ('InvocationStatus', 3): InvocationStatus,
    ('Invoke', 1): InvokeV1,
    ('Invoke', 2): Invoke,
    ('InvokeCommand', 1): InvokeCommand,
    ('InvokerEffects', 1): InvokerEffectsV1,
    ('InvokerEffects', 2): InvokerEffectsV2,
    ('InvokerEffects', 3): InvokerEffects,
    ('KafkaCluster', 1): KafkaCluster,
    ('LeaderEpoch', 1): LeaderEpochV1,
    ('LeaderEpoch', 2): LeaderEpoch,
    ('OutboxEntry', 1): OutboxEntry,
    ('OutboxShipped', 1): OutboxShipped,
    ('Reply', 1): Reply,
    ('RetentionSweep', 1): RetentionSweep,
    ('Schedule', 1): Schedule,
    ('ScheduleCommand', 1): ScheduleCommand,
    ('Signal', 1): Signal,
    ('StateMutation', 1): StateMutation,
    ('StoreDelta', 1): StoreDelta,
    ('Subscription', 1): SubscriptionV1,
    ('Subscription', 2): SubscriptionV2,
    ('Subscription', 3): Subscription,
    ('Timer', 1): Timer,
    ('TimerFired', 1): TimerFired,
}
