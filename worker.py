"""The RQ worker: ``python worker.py``.

Builds the app with the factory, sweeps work a dead worker left behind, schedules the periodic
sweep, then runs the ``images``, ``maintenance`` and ``bulk`` queues (in that order: a click never
waits behind bulk work) with RQ's scheduler. The app context pushed here is inherited by every
forked work-horse, so jobs can use the database and config.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import uuid

from flask import Flask
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.scheduler import RQScheduler

from igny8 import create_app
from igny8.extensions import db
from igny8.ops.forks import supervise
from igny8.redis_client import get_rq_redis
from igny8.tasks.jobs import BULK_QUEUE, IMAGES_QUEUE, MAINTENANCE_QUEUE, schedule_sweep
from igny8.tasks.reconcile import reconcile
from igny8.tasks.scheduling import refeed
from igny8.webhooks.delivery import WEBHOOKS_QUEUE

WORKER_TTL = 25


class Igny8Scheduler(RQScheduler):
    """RQ's scheduler process (it moves jobs queued with ``enqueue_in``, the periodic sweep among
    them, onto their queue when due). RQ's own loop dies with a traceback on any Redis error,
    and the worker starts a new one only at its next maintenance, up to 10 minutes later. This
    one logs one line per outage and carries on when Redis answers: it registers again, and its
    heartbeat takes back the locks a restart lost."""

    def work(self) -> None:
        self._install_signal_handlers()
        born, outage = False, False
        while not self._stop_requested:
            try:
                if not born:
                    self.register_birth()
                    born = True
                if self.should_reacquire_locks:
                    self.acquire_locks()
                self.heartbeat()
                self.enqueue_scheduled_jobs()
                if outage:
                    self.log.warning("scheduler: Redis answers again")
                    outage = False
            except RedisError as exc:
                if not outage:
                    self.log.warning("scheduler: Redis unavailable (%s); retrying every %s s", exc, self.interval)
                born, outage = False, True
            time.sleep(self.interval)
        try:
            self.stop()
        except RedisError as exc:
            self.log.warning("scheduler stopped; its locks expire on their own (Redis unavailable: %s)", exc)


class Igny8Worker(Worker):
    """RQ's worker, plus: it registers itself again when Redis lost its registration (a Redis
    restart without persistence), so /healthz and rq-dashboard keep seeing it, and schedules the
    periodic sweep again (Redis lost that too); its scheduler rides out Redis outages."""

    sweep_every = 15  # seconds between sweeps: main() sets RECONCILE_INTERVAL

    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO",
                         date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
                         log_format: str = DEFAULT_LOGGING_FORMAT) -> None:
        """RQ's, with Igny8Scheduler as the scheduler process (burst mode, unused here, is RQ's)."""
        if burst:
            super()._start_scheduler(burst, logging_level, date_format, log_format)
            return
        self.scheduler = Igny8Scheduler(self.queues, connection=self.connection, serializer=self.serializer,
                                        logging_level=logging_level if logging_level is not None else self.log.level,
                                        date_format=date_format, log_format=log_format)
        self.scheduler.acquire_locks()
        if self.scheduler.acquired_locks:
            self.scheduler.start()

    def register_birth(self) -> None:
        """RQ refuses a name whose hash is in Redis without a death mark ("There exists an active
        worker named …"): after a Redis restart that is this worker's own leftover (a partial hash
        written by set_state, or a restored snapshot). Register under a fresh unique name instead."""
        try:
            super().register_birth()
        except ValueError:
            old, self.name = self.name, f"{self.name.split('~')[0]}~{uuid.uuid4().hex[:6]}"
            self.log.warning("worker name %s is still registered in Redis; registering as %s", old, self.name)
            super().register_birth()
            if getattr(self, "pubsub_thread", None) is not None:  # commands (rq-dashboard) use the new name
                self.unsubscribe()
                self.subscribe()

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:  # noqa: ANN001
        born = self.birth_date is not None
        if born and pipeline is None and not self.connection.hexists(self.key, "birth"):
            self.log.warning("worker registration lost (Redis restarted?); registering again")
            self.register_birth()
            schedule_sweep(self.connection, self.sweep_every)
        super().heartbeat(timeout, pipeline)


def main() -> int:
    # Metrics: this worker's work-horses (one per batch, one after another) count under its id;
    # with WORKER_PROCESSES > 1, each forked worker loop under its own (igny8/ops/forks.py).
    os.environ["IGNY8_METRICS_ID"] = str(os.getpid())
    app = create_app()
    app.app_context().push()
    # Import the provider SDKs and load the image codecs once here, before RQ forks a work-horse
    # per batch: a batch's first provider call then starts in ~0.1 s instead of ~0.5 s, and its
    # first image is stored ~70 ms sooner.
    from igny8.media import convert
    from igny8.providers import openai_provider, runware_provider  # noqa: F401

    openai_provider.shared_http_client()
    convert.warm_up()
    log = logging.getLogger("igny8.worker")
    connection = get_rq_redis()
    failed = reconcile()
    try:
        refeed()  # bulk tasks whose line Redis lost (a restart) are put back in it
    except RedisError as exc:
        log.warning("worker_refeed_failed error=%s", exc)
    db.session.remove()
    db.engine.dispose()  # forked work-horses must not share the parent's connections
    name = f"igny8-{socket.gethostname()}-{os.getpid()}"
    # RQ takes the queues in this order: webhooks (an attempt takes at most WEBHOOK_TIMEOUT), a click
    # (images), the sweep, and bulk work last.
    queues = [Queue(name, connection=connection)
              for name in (WEBHOOKS_QUEUE, IMAGES_QUEUE, MAINTENANCE_QUEUE, BULK_QUEUE)]
    processes = max(1, int(app.config["WORKER_PROCESSES"]))
    log.info("worker_start name=%s queues=%s processes=%d redis=%s database=%s reconciled=%d", name,
             ",".join(q.name for q in queues), processes, connection.connection_pool.connection_kwargs.get("port"),
             db.engine.url.render_as_string(hide_password=True), len(failed))
    if processes == 1:
        return serve(app, name, queues)
    return supervise(processes, lambda index: serve(app, f"{name}.{index}", queues))


def serve(app: Flask, name: str, queues: list[Queue]) -> int:
    """One RQ worker loop (restarted when RQ's loop ends on an error) until told to stop."""
    log = logging.getLogger("igny8.worker")
    connection = queues[0].connection
    restarts = 0
    while True:
        # RQ's work loop quits on a Redis error it does not expect (a restart mid-maintenance);
        # this process then starts a fresh worker instead of leaving the queue unserved.
        try:
            schedule_sweep(connection, app.config["RECONCILE_INTERVAL"])
        except RedisError as exc:
            log.warning("worker_wait_for_redis error=%s", exc)
            time.sleep(2)
            continue
        # A short TTL makes the idle worker's BLPOP return every 10 s, so its heartbeat runs (and it
        # re-registers after a Redis restart) and a dead worker leaves the dashboard soon. A restarted
        # loop takes a fresh name: the old registration may still sit in Redis until its TTL ends.
        worker = Igny8Worker(queues, connection=connection, name=name if not restarts else f"{name}-{restarts}",
                             worker_ttl=WORKER_TTL)
        worker.sweep_every = app.config["RECONCILE_INTERVAL"]
        try:
            worker.work(with_scheduler=True, logging_level="INFO")
        except (RedisError, ValueError) as exc:  # teardown or birth while Redis is away
            log.warning("worker_loop_error name=%s error=%s", worker.name, exc)
        # SIGTERM/SIGINT: RQ sets the shutdown date (and, when idle, ends the loop without setting
        # _stop_requested), so either means "leave".
        if worker._stop_requested or worker._shutdown_requested_date is not None:
            return 0
        restarts += 1
        log.warning("worker_restart name=%s reason='RQ work loop ended on an error'", worker.name)
        time.sleep(1)

if __name__ == "__main__":
    sys.exit(main())
