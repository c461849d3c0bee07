"""The kernel every Reprise process shares: configuration, ids and partitioning, the Kafka adapters,
the service protocol and its limits, request identity, health and fail-loud helpers."""
