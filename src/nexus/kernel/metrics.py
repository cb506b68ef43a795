"""Prometheus metrics of one process: HTTP requests, jobs and events, queue depths."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from nexus.kernel.runtime import Runtime

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "nexus_http_requests_total",
    "HTTP requests by route template, method and status.",
    ["service", "method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "nexus_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["service", "method", "route"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_INFLIGHT = Gauge(
    "nexus_http_requests_in_flight", "HTTP requests being served.", registry=REGISTRY
)
JOBS = Counter(
    "nexus_jobs_total",
    "Jobs and events handled, by consumer and outcome.",
    ["consumer", "outcome"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "nexus_queue_depth",
    "Jobs waiting in the SQL work queue, by queue and status.",
    ["queue", "status"],
    registry=REGISTRY,
)
OUTBOX_PUBLISHED = Counter(
    "nexus_outbox_published_total", "Outbox rows published by the relay.", registry=REGISTRY
)


def job_outcome(consumer: str, outcome: str) -> None:
    JOBS.labels(consumer, outcome).inc()


async def watch_queues(runtime: Runtime, interval_s: float = 5.0) -> None:
    """Refresh the queue depth gauges (SQL backend) every few seconds."""
    from nexus.kernel.queue_sql import queue_depths

    if runtime.nats is not None:
        return
    previous: set[tuple[str, str]] = set()
    while True:
        with contextlib.suppress(Exception):
            current: dict[tuple[str, str], int] = {}
            for db in runtime.service_databases():
                current.update(await queue_depths(db))
            for key in previous - current.keys():
                QUEUE_DEPTH.labels(*key).set(0)
            for key, count in current.items():
                QUEUE_DEPTH.labels(*key).set(count)
            previous = set(current)
        await asyncio.sleep(interval_s)
