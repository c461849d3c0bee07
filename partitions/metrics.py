"""Prometheus metrics of the partition processor (served by the admin API at /metrics)."""

from prometheus_client import Counter, Gauge, Histogram

RECORDS_APPLIED = Counter("reprise_records_applied_total", "Log records applied", ["partition"])
RECORDS_REJECTED = Counter("reprise_records_rejected_total", "Log records that did not decode or apply",
                           ["partition"])
APPLY_SECONDS = Histogram("reprise_apply_batch_seconds", "Time to apply and commit one batch",
                          buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
ATTEMPT_SECONDS = Histogram("reprise_attempt_seconds", "One attempt: request to the deployment until its last frame",
                            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60))
ATTEMPTS = Counter("reprise_attempts_total", "Attempts by how they ended", ["outcome"])
CONSUMER_LAG = Gauge("reprise_consumer_lag_records", "Records on the log not yet applied", ["partition"])
LEADING = Gauge("reprise_partitions_led", "Partitions this process leads")
