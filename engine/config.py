"""Engine configuration: one dataclass, defaults for a laptop, ``REPRISE_*`` environment overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for failed attempts (Restate's defaults, factor 2, capped)."""

    initial_interval_ms: int = 500
    factor: float = 2.0
    max_interval_ms: int = 60_000
    max_attempts: int | None = None  # None: retry until it succeeds
    on_max_attempts: str = "PAUSE"  # PAUSE (an operator resumes it) or KILL (it fails)

    def overridden(self, manifest: dict[str, Any]) -> RetryPolicy:
        """This policy with a service's or handler's ``retryPolicy*`` manifest fields applied."""
        changes: dict[str, Any] = {}
        for field_name, key in (("initial_interval_ms", "retryPolicyInitialInterval"),
                                ("max_interval_ms", "retryPolicyMaxInterval"),
                                ("max_attempts", "retryPolicyMaxAttempts"),
                                ("factor", "retryPolicyExponentiationFactor")):
            if manifest.get(key) is not None:
                changes[field_name] = manifest[key]
        if manifest.get("retryPolicyOnMaxAttempts"):
            changes["on_max_attempts"] = str(manifest["retryPolicyOnMaxAttempts"]).upper()
        return replace(self, **changes) if changes else self

    def delay_ms(self, failures: int) -> int:
        """Delay before the next attempt after ``failures`` consecutive failures (1-based)."""
        delay = self.initial_interval_ms * (self.factor ** max(failures - 1, 0))
        return int(min(delay, self.max_interval_ms))


@dataclass(frozen=True)
class Config:
    bootstrap: str = "127.0.0.1:9092"
    # A properties file of librdkafka settings for every client (SASL, TLS, tuning): engine/kafka_properties.py
    kafka_config: str = ""
    # The name subscriptions give this cluster in their source, kafka://<name>/<topic> (docs/kafka.md)
    kafka_cluster_name: str = "default"
    namespace: str = "reprise"
    partitions: int = 8
    replication_factor: int = 1
    home: Path = Path(".reprise")
    ingress_host: str = "127.0.0.1"
    ingress_port: int = 8080
    admin_host: str = "127.0.0.1"
    admin_port: int = 9070
    max_message_bytes: int = 4 * 1024 * 1024
    attempt_timeout_s: float = 300.0
    # An INVOKED invocation with no live attempt in its leader for this long gets a failure record of that
    # attempt, so it runs again (partitions/leader/attempt_guard.py); 0: no watchdog
    attempt_watchdog_s: float = 60.0
    eager_state_limit_bytes: int = 64 * 1024  # above this an object's state is sent lazily
    max_inflight_requests: int = 10_000  # per ingress process; past it: 429 with Retry-After
    # clients waiting on attach at once (ingress/attach.py), per ingress process and per invocation; past it: 429
    max_attach_waiters: int = 10_000
    max_attach_waiters_per_invocation: int = 1_000
    produce_timeout_ms: int = 30_000  # the ingress answers 503 when Kafka has not acknowledged by then
    # a call, attach or admin command waits this long for its answer, then gets 504 (the invocation goes on)
    reply_timeout_s: float = 600.0
    snapshot_dir: str = ""  # a directory or s3://bucket/prefix for snapshots; "" means <home>/snapshots/<namespace>
    snapshot_interval_s: float = 600.0  # a processor snapshots each partition it leads this often; 0: never
    snapshot_retain: int = 3  # snapshots kept per partition
    group_session_timeout_ms: int = 6_000  # how soon a dead processor's partitions move to the others
    # A stable name per processor (a StatefulSet pod's name): Kafka's static membership, so a processor
    # that restarts within the session timeout gets its partitions back with no rebalance at all.
    instance_id: str = ""
    # module:attribute of a restate-sdk app to run inside the engine (partitions/invoker/embedded.py)
    embedded_app: str = ""
    completed_retention_s: float = 86_400.0  # plain invocations are forgotten this long after they complete; 0: kept
    retention_sweep_interval_s: float = 60.0  # how often a leader looks for completions past their retention
    # engine/gc_policy.py: the collector runs every this many allocations once started (0: Python's 700)
    gc_gen0_threshold: int = 10_000
    # engine/thread_policy.py: librdkafka's and RocksDB's threads run SCHED_BATCH (never preempt the GIL holder)
    helper_threads_batch: bool = True
    # partitions/state/rocks_store.py: the memtables of all the stores a process opens share this budget (0: unbounded)
    store_memtable_mb: int = 256
    # BIDI_STREAM deployments keep one request open across steps (partitions/invoker/streaming.py)
    streaming: bool = True
    # Restate's inactivity and abort timeouts, per attempt (partitions/invoker/attempt_timeouts.py); a service's or
    # handler's own (its manifest, PATCH /services/{s}) override these. A streaming attempt silent (no message
    # either way) this long has its request body closed, so the handler suspends; 0: attempts run
    # request/response. Restate's default is 1 min; Reprise suspends a silent handler sooner, freeing its stream.
    inactivity_timeout_ms: int = 1_000
    # an attempt whose input is closed (asked to suspend, or request/response) and that sends nothing for this
    # long is aborted and retried by its retry policy (Restate's default, 10 min)
    abort_timeout_ms: int = 600_000
    # a handler whose streamed attempts ended this many times in a row without waiting for the runtime
    # runs request/response until one of its attempts suspends (partitions/invoker/stream_policy.py); 0: always stream
    stream_calm_attempts: int = 8
    invoker_concurrency: int = 512  # attempts in flight per processor; more wait their turn
    invoker_connections: int = 8  # h2c connections per deployment origin
    invoker_streams_per_connection: int = 100  # at most this many requests at once on one connection
    # Processors write each batch's store writes to <namespace>.changelog (partitions/state/changelog.py), so a
    # store is restored by writing them back rather than by replaying the log through apply()
    changelog: bool = True
    changelog_restore_behind: int = 10_000  # a store this many records behind its log restores from the changelog
    changelog_max_delay_ms: int = 200  # batches merged into one delta for at most this long (0: one per batch)
    # A leader records how far its outbox was delivered (one OutboxShipped record) at most this often: a
    # crash re-ships at most this much, which receivers drop by (partition, seq)
    outbox_report_ms: int = 200
    embedded_threads: int = 4  # worker threads (each its own event loop) for the embedded app
    # Topics a Reply may be written to for a Kafka-native client: comma-separated glob patterns
    # (engine/reply_topics.py); "" means "<namespace>.replies.*". Engine topics are never allowed.
    reply_topics: str = ""
    # ingress/admin_guard.py: the admin API's bearer token, or a file holding it (REPRISE_ADMIN_TOKEN[_FILE])
    admin_token: str = field(default="", repr=False)
    admin_token_file: str = ""
    # engine/cluster_members.py: this processor's admin API as other processes reach it ("": host and port)
    admin_advertised_url: str = ""
    # POST /query (ingress/sql_query.py): rows an answer holds at most, rows a query may read from the
    # stores at most, and how long it may run
    query_row_limit: int = 10_000
    query_scan_limit: int = 200_000
    query_timeout_s: float = 30.0
    # engine/interpreter_share.py: the share of a process's interpreter its queries may take together
    query_cpu_share: float = 0.25
    # engine/identity.py: an Ed25519 PKCS#8 PEM key; requests to services are then signed (request identity v1)
    request_identity_private_key_pem_file: str = ""
    # docs/metrics.md: librdkafka's statistics every this many ms (engine/kafka_stats.py), and the processor's
    # store gauges every this many s (partitions/leader/partition_gauges.py); 0: never
    kafka_stats_interval_ms: int = 5_000
    metrics_sample_interval_s: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def log_topic(self) -> str:
        return f"{self.namespace}.log"

    @property
    def commands_topic(self) -> str:
        """Where Kafka-native clients write commands (ingress/commands.py appends them to the log)."""
        return f"{self.namespace}.commands"

    @property
    def replies_topic(self) -> str:
        return f"{self.namespace}.replies"

    @property
    def deployments_topic(self) -> str:
        return f"{self.namespace}.deployments"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.namespace}.dead-letters"

    @property
    def subscriptions_topic(self) -> str:
        return f"{self.namespace}.subscriptions"

    @property
    def changelog_topic(self) -> str:
        return f"{self.namespace}.changelog"

    @property
    def data_dir(self) -> Path:
        return self.home / "data" / self.namespace

    @property
    def snapshot_location(self) -> str:
        """A directory, or an ``s3://bucket/prefix`` URL."""
        return self.snapshot_dir or str(self.home / "snapshots" / self.namespace)

    @staticmethod
    def from_env(**overrides: object) -> Config:
        """Defaults, then ``REPRISE_<FIELD>`` variables, then explicit overrides (None is ignored)."""
        cfg = Config()
        env: dict[str, Any] = {}  # field name -> its value, each of its field's type
        for f in fields(Config):
            raw = os.environ.get(f"REPRISE_{f.name.upper()}")
            if raw is None or f.name == "retry":
                continue
            default = getattr(cfg, f.name)
            if isinstance(default, bool):
                env[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                env[f.name] = Path(raw) if f.name == "home" else type(default)(raw)
        retry = cfg.retry
        for name in ("initial_interval_ms", "max_interval_ms", "max_attempts"):
            raw = os.environ.get(f"REPRISE_RETRY_{name.upper()}")
            if raw is not None:
                changed: dict[str, Any] = {name: int(raw)}  # one of the policy's int fields
                retry = replace(retry, **changed)
        if os.environ.get("REPRISE_RETRY_ON_MAX_ATTEMPTS"):
            retry = replace(retry, on_max_attempts=os.environ["REPRISE_RETRY_ON_MAX_ATTEMPTS"].upper())
        env["retry"] = retry
        if "REPRISE_STREAM_IDLE_MS" in os.environ and "inactivity_timeout_ms" not in env:  # its former name
            env["inactivity_timeout_ms"] = int(os.environ["REPRISE_STREAM_IDLE_MS"])
        env.update({k: v for k, v in overrides.items() if v is not None})
        if env.get("kafka_config") and "bootstrap" not in env:
            from reprise.engine.kafka_properties import bootstrap_of  # the file names the cluster unless --kafka does

            file_bootstrap = bootstrap_of(str(env["kafka_config"]))
            if file_bootstrap:
                env["bootstrap"] = file_bootstrap
        return replace(cfg, **env)
