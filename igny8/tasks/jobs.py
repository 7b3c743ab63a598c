"""RQ jobs. Thin: they take primitive ids and call services. The worker process has pushed an
app context (worker.py), which the forked work-horse inherits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app
from redis import Redis
from rq import Queue

# The RQ queues: the images queue holds one job per task; the maintenance queue, the sweeps.
IMAGES_QUEUE = "images"
MAINTENANCE_QUEUE = "maintenance"
SWEEP_LOCK = "igny8:sweep:scheduled"


def process_image_generation_queue(task_id: str) -> dict[str, Any]:
    """Generate every image of the task; returns the task's result body."""
    from .runner import TaskRunner

    return TaskRunner(current_app._get_current_object(), task_id).run()


def reconcile_stuck_work() -> dict[str, Any]:
    """The periodic sweep: fail what a dead worker left behind, then schedule the next sweep."""
    from ..redis_client import get_rq_redis
    from ..webhooks.delivery import resume_pending
    from .reconcile import reconcile

    failed = reconcile()
    resumed = resume_pending()
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
