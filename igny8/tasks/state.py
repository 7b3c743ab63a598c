"""A task's state as clients see it: from the Redis progress keys while they live, else from
the database rows (the truth, kept after the keys expire or when Redis lost them)."""

from __future__ import annotations

import re
import time
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import GenerationTask, Image
from ..progress.store import ProgressStore
from ..redis_client import get_redis
from .rule import queue_item

_TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
FINAL_STATES = ("SUCCESS", "FAILURE")
# How a task that has ended went, beside its state (SUCCESS means it ran to the end, even with
# every image failed): all generated, some, none, or stopped by the writer.
OUTCOMES = ("generated", "partial", "failed", "cancelled")


def outcome_of(summary: dict[str, Any]) -> str | None:
    """One of OUTCOMES once the task has ended, None while it runs."""
    if summary.get("state") not in FINAL_STATES:
        return None
    if summary.get("cancelled"):
        return "cancelled"
    completed, total = summary.get("completed") or 0, summary.get("total_images") or 0
    if completed == 0:
        return "failed"
    return "generated" if completed >= total else "partial"


def progress_store() -> ProgressStore:
    return ProgressStore(get_redis(), current_app.config["PROGRESS_TTL"])


def _epoch(value: Any) -> float | None:
    return value.timestamp() if value is not None else None


def summary_from_task(task: GenerationTask) -> dict[str, Any]:
    summary = {
        "task_id": task.id, "state": task.state, "total_images": task.total, "current_image": 0,
        "completed": task.completed, "failed": task.failed, "cancelled": task.cancelled,
        "account_id": task.account_id, "content_id": task.content_id or "",
        "content_title": task.content.title if task.content else "", "cost": task.cost,
        "error": task.error, "image_ids": list(task.image_ids), "created_at": _epoch(task.created_at),
        "started_at": _epoch(task.started_at), "finished_at": _epoch(task.finished_at),
    }
    summary["outcome"] = outcome_of(summary)
    return summary


def items_from_db(task: GenerationTask) -> list[dict[str, Any]]:
    """Queue items rebuilt from the image rows, in the task's order."""
    rows = {img.id: img for img in db.session.scalars(
        select(Image).where(Image.id.in_(task.image_ids), Image.account_id == task.account_id)
        .options(selectinload(Image.content)))}
    items = []
    for index, image_id in enumerate(task.image_ids, start=1):
        image = rows.get(image_id)
        if image is None:
            continue
        item = queue_item(image, index, image.content.title)
        if image.task_id != task.id and image.status in ("queued", "processing"):
            item["status"] = "pending"  # held by a newer task; this one no longer has it
        if task.cancelled and not task.running and item["status"] == "pending":
            item["status"] = "cancelled"  # never started: the image itself is pending again
        item.update(thumb_url=image.mobile_url or image.image_url, placeholder=image.placeholder,
                    phase="stored" if image.status == "generated" else image.status)
        items.append(item)
    return items


def result_body(summary: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "task_id": summary["task_id"], "state": summary["state"], "outcome": outcome_of(summary),
        "cancelled": summary.get("cancelled", False),
        "completed": summary["completed"], "failed": summary["failed"], "total_images": summary["total_images"],
        "cost": summary.get("cost", 0.0), "error": summary.get("error") or None,
        "duration_seconds": _duration(summary),
        "results": [{"image_id": i["image_id"], "status": i["status"], "image_url": i.get("image_url"),
                     "error": i.get("error")} for i in items],
    }


def _duration(summary: dict[str, Any]) -> float | None:
    started, finished = summary.get("started_at"), summary.get("finished_at")
    try:
        return round(float(finished) - float(started), 3) if started and finished else None
    except (TypeError, ValueError):
        return None


def task_view(task: GenerationTask) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """(summary, items, last event id) — Redis first, the database when Redis has nothing, and
    the database's row for each image whose hash Redis lost (a restart mid-batch)."""
    try:
        summary, items, last_id = progress_store().snapshot(task.id)
    except RedisError:
        summary, items, last_id = None, [], "0-0"
    if summary is None or (task.state in ("SUCCESS", "FAILURE") and summary.get("state") != task.state):
        summary, items = summary_from_task(task), items_from_db(task)
    elif len(items) < len(task.image_ids):
        live = {item["image_id"]: item for item in items}
        items = [live.get(item["image_id"], item) for item in items_from_db(task)]
    return summary, items, last_id


def task_progress_body(task: GenerationTask) -> dict[str, Any]:
    """The body of GET task_progress and of the stream's ``snapshot`` event."""
    summary, items, _ = task_view(task)
    return progress_body(summary, items)


def progress_body(summary: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    finished = summary["state"] in FINAL_STATES
    return {
        "task_id": summary["task_id"],
        "state": summary["state"],
        "meta": {
            "current_image": summary.get("current_image", 0), "total_images": summary["total_images"],
            "completed": summary["completed"], "failed": summary["failed"],
            "cancelled": summary.get("cancelled", False), "outcome": outcome_of(summary),
            "content_id": summary.get("content_id") or None,
            "content_title": summary.get("content_title", ""), "cost": summary.get("cost", 0.0),
            "results": [{"image_id": i["image_id"], "status": i["status"], "image_url": i.get("image_url"),
                         "error": i.get("error")} for i in items],
            "queue": items,
        },
        "result": result_body(summary, items) if finished else None,
        "server_time": time.time(),
    }


def get_task(account_id: int, task_id: str) -> GenerationTask | None:
    # Task ids are RQ job ids; anything else (NUL, which PostgreSQL refuses, included) is no task.
    if not _TASK_ID.fullmatch(task_id or ""):
        return None
    return db.session.scalar(select(GenerationTask).filter_by(id=task_id, account_id=account_id))
