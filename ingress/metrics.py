"""Prometheus metrics of the HTTP ingress: requests by route kind and status, their latency, in flight.

Why not prometheus_client's ``Histogram`` here: its ``labels()`` takes a lock and a lookup and its
``observe`` a lock and a walk over every bucket, ~1.4 µs a request on a path that answers a one-way
send in tens of µs. Here a request costs a dict lookup, a bisect and two additions (~0.3 µs), all on
the event loop's thread, and the collector turns the counts into samples when ``/metrics`` is
scraped (on the same loop: the admin API runs there too).

Labels never come from what a client sent: ``kind`` is one of ``KINDS``, ``status`` an HTTP status the
ingress answered, ``service`` and ``handler`` a registered service's and handler's names (empty for
requests that named none that is registered).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator
from time import perf_counter

from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from reprise.engine.hot_path import HOT_PATH

# call, send: POST /{service}/...[/send]; attach, output: the /restate/... result routes by mode;
# awakeable: resolve or reject; health: /restate/health; protocol: refused by the HTTP layer before
# routing (malformed, 413 body too large, 431 head too large, 505 HTTP version); admin: the admin API
KINDS = ("call", "send", "attach", "output", "awakeable", "health", "protocol", "admin")
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_LABELS = ["kind", "status", "service", "handler"]
_BOUNDS = [repr(b) for b in BUCKETS]


class IngressMetrics(Collector):
    """The counts of one process's ingresses (one per process in practice; several share it)."""

    def __init__(self) -> None:
        self.in_flight = 0  # requests being answered now (a call waits here for its result)
        # (kind, status, service, handler) -> [count per bucket..., count above the last, sum of seconds]
        self._cells: dict[tuple[str, int, str, str], list[float]] = {}
        self._refused: dict[int, int] = {}  # protocol refusals by status: no latency to speak of

    def observe(self, kind: str, status: int, service: str, handler: str, seconds: float) -> None:
        cell = self._cells.get((kind, status, service, handler))
        if cell is None:
            cell = self._cells[(kind, status, service, handler)] = [0] * (len(BUCKETS) + 2)
        cell[bisect_left(BUCKETS, seconds)] += 1
        cell[-1] += seconds

    def refused(self, status: int) -> None:
        """A request the HTTP layer refused before it reached a route."""
        self._refused[status] = self._refused.get(status, 0) + 1

    def answered(self, status: int) -> int:
        """Answers with this status so far, over every kind (for the 429 and 503 counters and tests)."""
        return (sum(int(sum(c[:-1])) for (_k, s, _sv, _h), c in list(self._cells.items()) if s == status)
                + self._refused.get(status, 0))

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("reprise_ingress_requests", "HTTP requests the ingress answered, by route "
                                       "kind, status, and the registered service and handler", labels=_LABELS)
        latency = HistogramMetricFamily("reprise_ingress_request_seconds", "From a request read whole to its "
                                        "answer, by route kind, status, service and handler", labels=_LABELS)
        for (kind, status, service, handler), cell in list(self._cells.items()):
            labels = [kind, str(status), service, handler]
            cumulative, buckets = 0, []
            for bound, n in zip(_BOUNDS, cell[:-2], strict=True):
                cumulative += int(n)
                buckets.append((bound, cumulative))
            total = cumulative + int(cell[-2])
            buckets.append(("+Inf", total))
            requests.add_metric(labels, total)
            latency.add_metric(labels, buckets, cell[-1])
        for status, n in list(self._refused.items()):
            requests.add_metric(["protocol", str(status), "", ""], n)
        yield requests
        yield latency
        yield GaugeMetricFamily("reprise_ingress_requests_in_flight", "Requests the ingress is answering now "
                                "(calls waiting for their result included)", value=self.in_flight)
        yield CounterMetricFamily("reprise_ingress_overloaded", "Requests refused with 429: too many in flight "
                                  "or waiting on attach (REPRISE_MAX_INFLIGHT_REQUESTS, REPRISE_MAX_ATTACH_WAITERS)",
                                  value=self.answered(429))
        yield CounterMetricFamily("reprise_ingress_unavailable", "Requests answered 503: the log could not be "
                                  "written (Kafka unreachable or refusing)", value=self.answered(503))

    def describe(self) -> Iterator[Metric]:
        """Names without samples, so registering does not call ``collect``."""
        yield CounterMetricFamily("reprise_ingress_requests", "", labels=_LABELS)
        yield HistogramMetricFamily("reprise_ingress_request_seconds", "", labels=_LABELS)
        yield GaugeMetricFamily("reprise_ingress_requests_in_flight", "")
        yield CounterMetricFamily("reprise_ingress_overloaded", "")
        yield CounterMetricFamily("reprise_ingress_unavailable", "")


INGRESS = IngressMetrics()
HOT_PATH.watch(lambda: INGRESS.in_flight)  # SQL queries are paced while requests are in flight
REGISTRY.register(INGRESS)


@web.middleware
async def count_admin_requests(request: web.Request,
                               handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """The admin API's requests (aiohttp), as kind ``admin``: by status, with their latency."""
    started, status = perf_counter(), 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as e:
        status = e.status
        raise
    except asyncio.CancelledError:
        status = 499
        raise
    finally:
        INGRESS.observe("admin", status, "", "", perf_counter() - started)
