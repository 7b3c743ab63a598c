"""Prometheus metrics (DESIGN.md, "Metrics"), counted by every web and worker process together.

prometheus-client's multiprocess mode: with ``PROMETHEUS_MULTIPROC_DIR`` set in the environment
of every process (``make run`` and the units in deploy/ set it; the folder is emptied when they
start), each process writes its samples to files there and ``GET /metrics`` merges them. An RQ
work-horse writes under its worker's id (``IGNY8_METRICS_ID``, set by worker.py): horses run one
after another, so the files stay one set per worker instead of one per batch. Without the folder,
each process counts alone (enough for one web process in development).

The queue lengths are read from RQ when /metrics is scraped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if MULTIPROC_DIR:
    values.ValueClass = values.MultiProcessValue(lambda: int(os.environ.get("IGNY8_METRICS_ID") or os.getpid()))

IMAGES_FINISHED = Counter("igny8_images_finished_total", "Images that ended, by provider and outcome "
                          "(generated, failed, cancelled)", ["provider", "outcome"])
PROVIDER_CALL = Histogram("igny8_provider_call_seconds", "One provider call, from request to answer (each attempt)",
                          ["provider"], buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 180))
BATCH_WAIT = Histogram("igny8_batch_wait_seconds", "A task's wait from queued to started, by kind (interactive, bulk)",
                       ["kind"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600))
COST = Counter("igny8_cost_usd_total", "Provider cost recorded for images, in US dollars", ["provider"])
OPEN_STREAMS = Gauge("igny8_open_streams", "Event streams open on the web processes", multiprocess_mode="livesum")


def image_finished(provider: str, outcome: str, cost: float) -> None:
    IMAGES_FINISHED.labels(provider=provider, outcome=outcome).inc()
    if cost:
        COST.labels(provider=provider).inc(cost)


def provider_called(provider: str, seconds: float) -> None:
    PROVIDER_CALL.labels(provider=provider).observe(seconds)


def task_started(kind: str, waited_seconds: float) -> None:
    BATCH_WAIT.labels(kind=kind).observe(max(waited_seconds, 0.0))


class QueueLengths(Collector):
    """``igny8_queue_length{queue}``: the jobs waiting in each RQ queue, read at scrape time."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("igny8_queue_length", "Jobs waiting in each RQ queue", labels=["queue"])
        try:
            for queue in Queue.all(connection=self.redis):
                family.add_metric([queue.name], queue.count)
        except RedisError:
            pass  # Redis away: no queue figures in this scrape (igny8_up-style alerts see it)
        yield family


def exposition(redis: Redis) -> bytes:
    """The text of /metrics: every process's samples (or this process's alone) plus the queues."""
    registry = CollectorRegistry()
    if MULTIPROC_DIR:
        multiprocess.MultiProcessCollector(registry)
    else:
        for metric in (IMAGES_FINISHED, PROVIDER_CALL, BATCH_WAIT, COST, OPEN_STREAMS):
            registry.register(metric)
    registry.register(QueueLengths(redis))
    return generate_latest(registry)


def process_exited(pid: int) -> None:
    """A web process ended: its open-stream count no longer adds up (gunicorn's child_exit)."""
    if MULTIPROC_DIR:
        multiprocess.mark_process_dead(pid)
