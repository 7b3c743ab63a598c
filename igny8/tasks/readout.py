"""What a client reads about a task: its summary and queue from the Redis progress keys while
they live, else from the database rows (the truth, kept after the keys expire or when Redis lost
them); and the wire bodies built from them (task_progress, the stream's ``snapshot`` and
``done``). Reading never changes anything: checking for a dead worker is a separate step
(``reconcile.check_task``) that the views take before they read."""

from __future__ import annotations

import re
import time
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import bindparam, select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import GenerationTask, Image
from ..progress.schema import FINAL_STATES, HELD_STATUSES, ItemStatus, QueueItem, TaskSummary, phase_of_status
from ..progress.store import ProgressStore, Snapshot
from ..redis_client import get_redis

_TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Built once (its cache key is kept on the object): every stream opening and task read runs it.
_TASK_OF_ACCOUNT = select(GenerationTask).where(GenerationTask.id == bindparam("task_id"),
                                                GenerationTask.account_id == bindparam("account_id"))


def progress_store() -> ProgressStore:
    """The app's store (one per app: it holds the client and the registered write script)."""
    store = current_app.extensions.get("progress_store")
    if store is None:
        store = ProgressStore(get_redis(), current_app.config["PROGRESS_TTL"])
        current_app.extensions["progress_store"] = store
    return store


def _epoch(value: Any) -> float | None:
    return value.timestamp() if value is not None else None


def summary_from_task(task: GenerationTask) -> TaskSummary:
    return TaskSummary(
        task_id=task.id, state=task.state, total_images=task.total, completed=task.completed,
        failed=task.failed, cancelled=task.cancelled, account_id=task.account_id, content_id=task.content_id,
        content_title=task.content.title if task.content else "", cost=task.cost, error=task.error,
        image_ids=list(task.image_ids), created_at=_epoch(task.created_at), started_at=_epoch(task.started_at),
        finished_at=_epoch(task.finished_at), run_id=task.run_id)


def items_from_db(task: GenerationTask) -> list[QueueItem]:
    """Queue items rebuilt from the image rows, in the task's order."""
    rows = {img.id: img for img in db.session.scalars(
        select(Image).where(Image.id.in_(task.image_ids), Image.account_id == task.account_id)
        .options(selectinload(Image.content)))}
    items = []
    for index, image_id in enumerate(task.image_ids, start=1):
        image = rows.get(image_id)
        if image is None:
            continue
        item = QueueItem.from_image(image, index, image.content.title)
        if image.task_id != task.id and image.status in HELD_STATUSES:
            item.status = ItemStatus.PENDING  # held by a newer task; this one no longer has it
        if task.cancelled and not task.running and item.status == ItemStatus.PENDING:
            item.status = ItemStatus.CANCELLED  # never started: the image itself is pending again
        item.thumb_url, item.placeholder = image.mobile_url or image.image_url, image.placeholder
        item.phase = phase_of_status(image.status)
        items.append(item)
    return items


def result_body(summary: TaskSummary, items: list[QueueItem]) -> dict[str, Any]:
    return {
        "task_id": summary.task_id, "state": summary.state, "outcome": summary.outcome,
        "cancelled": summary.cancelled, "completed": summary.completed, "failed": summary.failed,
        "total_images": summary.total_images, "cost": summary.cost, "error": summary.error or None,
        "duration_seconds": summary.duration_seconds, "results": [item.result() for item in items],
    }


TaskView = tuple[TaskSummary, list[QueueItem], str]  # what a client is shown: summary, items, last event id


def task_view(task: GenerationTask, snapshot: Snapshot | None = None) -> TaskView:
    """(summary, items, last event id) — Redis first (``snapshot``, when the caller has just read
    it), the database when Redis has nothing, and the database's row for each image whose hash
    Redis lost (a restart mid-batch)."""
    if snapshot is None:
        try:
            snapshot = progress_store().snapshot(task.id, task.image_ids)
        except RedisError:
            snapshot = None, [], "0-0"
    summary, items, last_id = snapshot
    if summary is None or (task.state in FINAL_STATES and summary.state != task.state):
        summary, items = summary_from_task(task), items_from_db(task)
    elif len(items) < len(task.image_ids):
        live = {item.image_id: item for item in items}
        items = [live.get(item.image_id, item) for item in items_from_db(task)]
    return summary, items, last_id


def task_progress_body(task: GenerationTask) -> dict[str, Any]:
    """The body of GET task_progress and of the stream's ``snapshot`` event."""
    summary, items, _ = task_view(task)
    return progress_body(summary, items)


def progress_body(summary: TaskSummary, items: list[QueueItem]) -> dict[str, Any]:
    return {
        "task_id": summary.task_id,
        "state": summary.state,
        "meta": {
            "current_image": summary.current_image, "total_images": summary.total_images,
            "completed": summary.completed, "failed": summary.failed, "cancelled": summary.cancelled,
            "outcome": summary.outcome, "content_id": summary.content_id or None,
            "content_title": summary.content_title, "cost": summary.cost, "run_id": summary.run_id,
            "results": [item.result() for item in items],
            "queue": [item.to_dict() for item in items],
        },
        "result": result_body(summary, items) if summary.finished else None,
        "server_time": time.time(),
    }


def summary_of_progress_body(body: dict[str, Any]) -> TaskSummary:
    """The summary inside a task_progress / ``snapshot`` body."""
    meta = body["meta"]
    return TaskSummary(task_id=body["task_id"], state=body["state"], total_images=meta["total_images"],
                       current_image=meta["current_image"], completed=meta["completed"], failed=meta["failed"],
                       cancelled=meta["cancelled"], content_id=meta["content_id"],
                       content_title=meta["content_title"], cost=meta["cost"], run_id=meta.get("run_id"))


def get_task(account_id: int, task_id: str) -> GenerationTask | None:
    # Task ids are RQ job ids; anything else (NUL, which PostgreSQL refuses, included) is no task.
    if not _TASK_ID.fullmatch(task_id or ""):
        return None
    return db.session.scalar(_TASK_OF_ACCOUNT, {"task_id": task_id, "account_id": account_id})
