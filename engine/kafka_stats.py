"""librdkafka's statistics as Prometheus metrics: broker round trips, messages sent and received,
queue sizes and the consumer's lag per partition.

A client opts in with ``settings(cfg, client)`` in its configuration: librdkafka then hands its
statistics (JSON) to the callback every ``REPRISE_KAFKA_STATS_INTERVAL_MS``, on the thread that polls
that client. The callback keeps a few numbers of it; the collector turns the latest of each client
into samples when ``/metrics`` is scraped. Nothing happens per message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import orjson
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reprise.engine.config import Config

log = logging.getLogger(__name__)


class ClientStats(NamedTuple):
    """What is kept of one statistics report of one client."""

    at: float  # time.time() when it arrived
    queue_messages: int  # msg_cnt: produced messages not yet delivered (in librdkafka's queues)
    reply_queue: int  # replyq: events waiting for the application's poll
    tx_messages: int  # txmsgs: messages sent to brokers, since the client was made
    rx_messages: int  # rxmsgs: messages received (fetched)
    brokers: list[tuple[str, int, float, float]]  # (node id, up, rtt average, rtt p99 in seconds)
    partitions: list[tuple[str, str, int, int]]  # (topic, partition, consumer lag, fetch queue messages)


def summarize(stats: dict[str, Any]) -> ClientStats:
    """The numbers kept of a report (librdkafka's STATISTICS.md names the fields)."""
    brokers = []
    for b in stats.get("brokers", {}).values():
        if b.get("nodeid", -1) < 0 or b.get("source") == "logical":  # bootstrap entries, the coordinator's alias
            continue
        rtt = b.get("rtt", {})
        brokers.append((str(b["nodeid"]), int(b.get("state") == "UP"), rtt.get("avg", 0) / 1e6,
                        rtt.get("p99", 0) / 1e6))
    partitions = []
    for topic, t in stats.get("topics", {}).items():
        for p, part in t.get("partitions", {}).items():
            lag = part.get("consumer_lag", -1)
            if p != "-1" and lag >= 0:  # -1: librdkafka's unassigned partition; lag -1: not consumed here
                partitions.append((topic, p, lag, part.get("fetchq_cnt", 0)))
    return ClientStats(time.time(), stats.get("msg_cnt", 0), stats.get("replyq", 0), stats.get("txmsgs", 0),
                       stats.get("rxmsgs", 0), brokers, partitions)


class KafkaStats(Collector):
    def __init__(self) -> None:
        self.latest: dict[str, ClientStats] = {}

    def settings(self, cfg: Config, client: str) -> dict[str, Any]:
        """The client settings that report its statistics under the label ``client`` (none at an interval of 0)."""
        if cfg.kafka_stats_interval_ms <= 0:
            return {}
        return {"statistics.interval.ms": cfg.kafka_stats_interval_ms,
                "stats_cb": lambda raw: self.received(client, raw)}

    def received(self, client: str, raw: str) -> None:
        try:
            self.latest[client] = summarize(orjson.loads(raw))
        except Exception:  # noqa: BLE001 - a report we cannot read loses a sample, nothing else
            log.debug("unreadable librdkafka statistics from %s", client, exc_info=True)

    def collect(self) -> Iterator[Metric]:
        c, cb, cp = ["client"], ["client", "broker"], ["client", "topic", "partition"]
        queue = GaugeMetricFamily("reprise_kafka_queue_messages", "Messages a producer holds that no broker has "
                                  "acknowledged yet (librdkafka msg_cnt)", labels=c)
        replyq = GaugeMetricFamily("reprise_kafka_reply_queue_events", "Events (delivery reports, errors) waiting "
                                   "for the client's poll (replyq)", labels=c)
        tx = CounterMetricFamily("reprise_kafka_tx_messages", "Messages sent to brokers (txmsgs)", labels=c)
        rx = CounterMetricFamily("reprise_kafka_rx_messages", "Messages fetched from brokers (rxmsgs)", labels=c)
        age = GaugeMetricFamily("reprise_kafka_stats_age_seconds", "Time since the client's last statistics report",
                                labels=c)
        up = GaugeMetricFamily("reprise_kafka_broker_up", "1 while the client's connection to the broker is up",
                               labels=cb)
        rtt = GaugeMetricFamily("reprise_kafka_broker_rtt_seconds", "Average round trip of requests to the broker "
                                "over the last statistics interval", labels=cb)
        rtt99 = GaugeMetricFamily("reprise_kafka_broker_rtt_p99_seconds", "99th percentile round trip to the "
                                  "broker over the last statistics interval", labels=cb)
        lag = GaugeMetricFamily("reprise_kafka_consumer_lag_records", "Records between the consumer's position and "
                                "the partition's end, as librdkafka last saw them", labels=cp)
        fetchq = GaugeMetricFamily("reprise_kafka_fetch_queue_messages", "Messages fetched but not yet consumed "
                                   "(fetchq_cnt)", labels=cp)
        now = time.time()
        for client, s in list(self.latest.items()):
            queue.add_metric([client], s.queue_messages)
            replyq.add_metric([client], s.reply_queue)
            tx.add_metric([client], s.tx_messages)
            rx.add_metric([client], s.rx_messages)
            age.add_metric([client], now - s.at)
            for broker, is_up, avg, p99 in s.brokers:
                up.add_metric([client, broker], is_up)
                rtt.add_metric([client, broker], avg)
                rtt99.add_metric([client, broker], p99)
            for topic, partition, records, fetched in s.partitions:
                lag.add_metric([client, topic, partition], records)
                fetchq.add_metric([client, topic, partition], fetched)
        yield from (queue, replyq, tx, rx, age, up, rtt, rtt99, lag, fetchq)


KAFKA_STATS = KafkaStats()
REGISTRY.register(KAFKA_STATS)
