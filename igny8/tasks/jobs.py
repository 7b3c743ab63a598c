"""RQ jobs. Thin: they take primitive ids and call services. The worker process has pushed an
app context (worker.py), which the forked work-horse inherits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app
from redis import Redis
from rq import Queue

from .attempts import MAX_ATTEMPTS

# The RQ queues: the images queue holds one job per task; the maintenance queue, the sweeps.
IMAGES_QUEUE = "images"
BULK_QUEUE = "bulk"  # workers take it after IMAGES_QUEUE: a click never waits behind bulk work
MAINTENANCE_QUEUE = "maintenance"
SWEEP_LOCK = "igny8:sweep:scheduled"


def job_timeout(images: int, concurrency: int) -> int:
    """Worst case of the batch: every image using all its attempts, plus storage and slack."""
    per_image = current_app.config["PROVIDER_TIMEOUT"] * MAX_ATTEMPTS + 90
    return int(120 + per_image * -(-images // max(concurrency, 1)))


def process_image_generation_queue(task_id: str) -> dict[str, Any]:
    """Generate every image of the task; returns the task's result body."""
    from .runner import TaskRunner

    return TaskRunner(current_app._get_current_object(), task_id).run()


def process_bulk_task(task_id: str) -> dict[str, Any]:
    """One article of a bulk run; when it ends (however), the next bulk task is fed to RQ."""
    from .runs import task_ended

    try:
        return process_image_generation_queue(task_id)
    finally:
        task_ended(task_id)


def reconcile_stuck_work() -> dict[str, Any]:
    """The periodic sweep: fail what a dead worker left behind, then schedule the next sweep."""
    from ..redis_client import get_rq_redis
    from ..webhooks.delivery import resume_pending
    from .reconcile import reconcile
    from .scheduling import refeed

    failed = reconcile()
    resumed = resume_pending()
    refeed()
    connection = get_rq_redis()
    connection.delete(SWEEP_LOCK)
    schedule_sweep(connection, current_app.config["RECONCILE_INTERVAL"])
    return {"failed_tasks": failed, "webhooks_resumed": resumed}


def schedule_sweep(connection: Redis, every: int) -> bool:
    """Schedule one sweep in ``every`` seconds unless one is already scheduled (by any worker).
    The lock expires on its own, so a sweep lost with a dead worker is scheduled again."""
    if not connection.set(SWEEP_LOCK, "1", nx=True, ex=every * 3):
        return False
    Queue(MAINTENANCE_QUEUE, connection=connection).enqueue_in(
        timedelta(seconds=every), reconcile_stuck_work,
        description="Fail images left behind by dead workers", result_ttl=300)
    return True
