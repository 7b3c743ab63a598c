"""Create, enqueue and cancel tasks (one GenerationTask row and one RQ job each, same id)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import case

from ..extensions import commit_keeping_rows, db
from ..integrations.settings import image_generation_config
from ..logs import event
from ..models import GenerationTask, Image, utcnow
from ..progress.schema import QUEUED, ImageStatus, ItemStatus, QueueItem, TaskState
from ..redis_client import get_rq_redis
from ..spend.budget import BudgetExceeded, estimate, release, reserve
from ..text import inert
from .announce import announce_finished
from .jobs import IMAGES_QUEUE, job_timeout, process_image_generation_queue
from .readout import items_from_db, progress_store, result_body, summary_from_task
from .requests import QueueError, claim, holding_task, select_images
from .scheduling import promote


@dataclass(frozen=True)
class QueuedTask:
    """The answer to a generate request. ``existing`` is True when every image was already held
    by a running task, which is then the answer (a double click never queues anything twice);
    ``note`` says why images were left out (the per-article cap), None when none were."""

    task: GenerationTask
    items: list[QueueItem]
    existing: bool
    note: str | None


def queue_task(account_id: int, body: Any, *, user_id: int | None = None, source: str | None = None) -> QueuedTask:
    """Claim the requested images for a new task and enqueue its job; raises QueueError. ``user_id``
    and ``source`` (models.TASK_SOURCES) record who started it and from where."""
    settings = image_generation_config(account_id)
    images, content, note = select_images(account_id, body, settings["max_in_article_images"])
    task_id = uuid.uuid4().hex
    claimed = claim(images, task_id)
    if not claimed:
        db.session.rollback()
        running = holding_task(account_id, images, content)
        if running is None:
            where = " of this article" if content else ""
            raise QueueError(409, f"Nothing to generate: every image{where} with a prompt is generated already."
                             + (f" {note}" if note else ""))
        if promote(running):  # its bulk task still waits in line: the click runs it now
            _enqueue(running, settings)
        return QueuedTask(running, items_from_db(running), True, note)
    contents = {img.content_id for img in claimed}
    task = GenerationTask(id=task_id, account_id=account_id, image_ids=[img.id for img in claimed],
                          content_id=contents.pop() if len(contents) == 1 else None, total=len(claimed),
                          enqueued_at=utcnow(), user_id=user_id, source=source)
    db.session.add(task)
    try:
        reserve(account_id, task_id, estimate(claimed, settings), settings["monthly_budget"])
    except BudgetExceeded:
        db.session.rollback()  # the claim too: nothing is queued
        raise
    items = [QueueItem.from_image(img, i, img.content.title) for i, img in enumerate(claimed, start=1)]
    commit_keeping_rows()  # what follows reads the task, its article and the images just written
    for item in items:
        item.status, item.progress, item.image_url, item.error = ItemStatus.PENDING, 0, None, None
        item.phase = QUEUED.name
    progress_store().init_task(summary_from_task(task), items)
    _enqueue(task, settings)
    event("task_queued", account=account_id, task=task.id, content=task.content_id, images=task.total)
    return QueuedTask(task, items, False, note)


def _enqueue(task: GenerationTask, settings: dict[str, Any]) -> None:
    # The job's description and meta are shown by rq-dashboard, which renders some of them as HTML:
    # what a writer typed goes in without markup characters (and the dashboard's job page escapes).
    title = inert(task.content.title, 120) if task.content else "several articles"
    try:
        Queue(IMAGES_QUEUE, connection=get_rq_redis()).enqueue(
            process_image_generation_queue, task.id, job_id=task.id,
            job_timeout=job_timeout(task.total, settings["concurrency"]),
            description=f"Generate {task.total} image{'s' if task.total != 1 else ''} for “{title}”",
            result_ttl=7 * 24 * 3600, failure_ttl=7 * 24 * 3600,
            meta={"account_id": task.account_id, "content_id": task.content_id, "content_title": title,
                  "progress": {"state": TaskState.PENDING.value, "total_images": task.total, "completed": 0,
                               "failed": 0}},
        )
    except RedisError as exc:
        release_task(task, state=TaskState.FAILURE, error="The job queue is unavailable; try again in a minute.")
        raise QueueError(503, "The job queue (Redis) is unavailable; nothing was queued. "
                              "Try again in a minute.") from exc


def release_task(task: GenerationTask, *, state: str, error: str | None = None, cancelled: bool = False) -> None:
    """End a task that never ran: its queued images go back to pending (generated, when they have a
    version to show: a regeneration)."""
    back = case((Image.active_version_id.is_not(None), ImageStatus.GENERATED.value), else_=ImageStatus.PENDING.value)
    db.session.execute(db.update(Image).where(Image.task_id == task.id, Image.status == ImageStatus.QUEUED)
                       .values(status=back, task_id=None))
    task.state, task.error, task.cancelled, task.finished_at = state, error, cancelled, utcnow()
    release(task.id)
    db.session.commit()
    summary, items = summary_from_task(task), items_from_db(task)
    try:
        progress_store().finish_task(summary, result_body(summary, items))
    except RedisError:
        pass
    announce_finished(task)


def cancel_task(task: GenerationTask) -> None:
    """Stop after the image in flight; images not started go back to ``pending``."""
    if not task.running:
        raise QueueError(409, f"This batch has already finished ({task.state}).")
    task.cancelled = True
    db.session.commit()
    try:
        progress_store().request_cancel(task.id)
    except RedisError:
        pass  # the job also reads the database flag
    if task.state == TaskState.PENDING:  # not started: nothing is in flight, end it now
        try:
            Job.fetch(task.id, connection=get_rq_redis()).cancel()
        except (NoSuchJobError, RedisError):
            pass
        release_task(task, state=TaskState.SUCCESS, cancelled=True)
    event("task_cancel_requested", account=task.account_id, task=task.id)
