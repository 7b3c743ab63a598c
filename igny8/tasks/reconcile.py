"""Nothing stuck: fail the work of dead workers so no image stays ``processing`` forever.

A running task writes a heartbeat to its database row every few seconds. A PROGRESS task whose
heartbeat is stale, or whose RQ job has failed (a killed work-horse), or a PENDING task whose
RQ job is gone (Redis lost it) or failed, belonged to a dead worker: its images that are still
queued or processing are marked failed with a message, so the writer can queue them again, and
the task ends FAILURE. Runs at worker start-up, periodically, on demand (CLI), and lazily when a
client reads a task.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from redis.exceptions import RedisError
from rq.exceptions import InvalidJobOperation
from rq.job import Job, JobStatus
from sqlalchemy import select

from ..content.versions import status_after_failure
from ..extensions import db
from ..logs import event
from ..models import GenerationTask, Image, utcnow
from ..progress.schema import FINAL_STATES, HELD_STATUSES, RUNNING_STATES, ImageStatus, TaskState
from ..redis_client import get_rq_redis
from ..spend.budget import release, release_ended
from .announce import announce_finished
from .readout import TaskView, items_from_db, progress_store, result_body, summary_from_task, task_view

TASK_ERROR = "The worker running this batch stopped (killed or out of memory) before it finished."
IMAGE_ERROR = "Generation was interrupted because the worker stopped; queue this image again."
DEAD_JOB_STATUSES = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
PENDING_GRACE = timedelta(seconds=20)


def _job_status(task_id: str) -> JobStatus | None:
    """The RQ job's status; None when RQ no longer knows the job. One HGET of the status field:
    fetching the whole job (its pickled call) would cost every stream open and page read."""
    try:
        return Job(task_id, connection=get_rq_redis()).get_status(refresh=True)
    except InvalidJobOperation:
        return None


def _status_matters(task: GenerationTask) -> bool:
    # A bulk task waiting in line has no job yet, or a fed one that is put back in line when it is
    # lost (scheduling.refeed): its job's status says nothing about a dead worker.
    return not (task.kind == "bulk" and task.state == TaskState.PENDING)


def is_dead(task: GenerationTask) -> bool:
    """Whether a PENDING/PROGRESS task's worker is gone. Redis errors count as 'not known dead'."""
    if not _status_matters(task):
        return False
    try:
        status = _job_status(task.id)
    except RedisError:
        status = JobStatus.STARTED
    return _dead_with(task, status)


def _dead_with(task: GenerationTask, status: JobStatus | None) -> bool:
    """``is_dead`` given its RQ job's status (None: RQ no longer knows the job)."""
    if status in DEAD_JOB_STATUSES:
        return True
    if task.state == TaskState.PROGRESS:
        stale = timedelta(seconds=current_app.config["HEARTBEAT_STALE_SECONDS"])
        return (task.heartbeat_at or task.started_at or task.created_at) < utcnow() - stale
    return status is None and task.created_at < utcnow() - PENDING_GRACE


def fail_task(task: GenerationTask, error: str = TASK_ERROR) -> None:
    images = db.session.scalars(select(Image).where(Image.task_id == task.id,
                                                     Image.status.in_(HELD_STATUSES))).all()
    for image in images:
        image.status, image.error, image.task_id = status_after_failure(image), IMAGE_ERROR, None
    task.state, task.error, task.finished_at = TaskState.FAILURE, error, utcnow()
    task.completed = db.session.scalar(select(db.func.count()).where(
        Image.id.in_(task.image_ids), Image.status == ImageStatus.GENERATED,
        Image.error.is_(None))) or 0  # a regeneration that failed leaves its image generated, with the error
    task.failed = task.total - task.completed
    release(task.id)
    db.session.commit()
    summary, items = summary_from_task(task), items_from_db(task)
    store = progress_store()
    for item in items:
        store.write_image(task.id, item)
    store.finish_task(summary, result_body(summary, items))
    event("task_reconciled", level=30, account=task.account_id, task=task.id, images_failed=len(images))
    announce_finished(task)


def reconcile(task: GenerationTask | None = None) -> list[str]:
    """Check one task, or every running task; returns the ids of the tasks that were failed."""
    tasks = [task] if task is not None else db.session.scalars(
        select(GenerationTask).where(GenerationTask.state.in_(RUNNING_STATES))).all()
    failed = []
    for candidate in tasks:
        if candidate.running and is_dead(candidate):
            fail_task(candidate)
            failed.append(candidate.id)
    if task is None:  # one task: fail_task released its images, and a running task has no orphans
        _release_orphans()
    return failed


def check_task(task: GenerationTask) -> None:
    """The step a read of one running task takes first (a view, or a quiet stream at its
    keepalive): if its worker died, its images and the task are failed now, not at the next sweep."""
    if task.running:
        reconcile(task)


def checked_view(task: GenerationTask) -> TaskView:
    """``check_task``, then ``readout.task_view``: a running task's RQ job status is read in the
    same Redis round trip as its snapshot (a stream opening's reads of Redis were three)."""
    if not (task.running and _status_matters(task)):
        return task_view(task)  # nothing for check_task to look at
    try:
        snapshot, raw = progress_store().snapshot_and_status(task.id, task.image_ids, Job.key_for(task.id))
    except RedisError:
        check_task(task)
        return task_view(task)
    try:
        status = JobStatus(raw) if raw else None
    except ValueError:  # a status this RQ does not know: not known dead
        status = JobStatus.STARTED
    if _dead_with(task, status):
        fail_task(task)
        return task_view(task)
    return task_view(task, snapshot)


def _release_orphans() -> None:
    """Images marked queued/processing by a task that has already ended (should not happen;
    cheap to repair at each sweep)."""
    ended = select(GenerationTask.id).where(GenerationTask.state.in_(FINAL_STATES))
    orphans = db.session.scalars(select(Image).where(Image.status.in_(HELD_STATUSES),
                                                     Image.task_id.in_(ended))).all()
    for image in orphans:
        image.status, image.error, image.task_id = status_after_failure(image), IMAGE_ERROR, None
    if release_ended() or orphans:
        db.session.commit()
