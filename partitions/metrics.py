"""Prometheus metrics of the partition processor."""

from prometheus_client import Counter, Histogram

RECORDS_APPLIED = Counter("reprise_records_applied_total", "Log records applied", ["partition"])
RECORDS_REJECTED = Counter("reprise_records_rejected_total", "Log records that did not decode", ["partition"])
APPLY_SECONDS = Histogram("reprise_apply_batch_seconds", "Time to apply and commit one batch",
                          buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
