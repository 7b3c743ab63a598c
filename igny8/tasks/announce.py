"""``task.finished`` to the account's webhook, once per task, from every path that ends one: the
runner (``runner.TaskRunner.finish``), a task released before it ran (``service.release_task``:
cancelled, or the queue was unavailable) and the sweep after a dead worker
(``reconcile.fail_task``); ``run.finished`` through ``announce`` (``runs.finish_if_done``). The
delivery's ``subject`` ("task:<id>", "run:<id>") keeps a task that two paths end (a sweep racing a
slow runner) to one announcement."""

from __future__ import annotations

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db
from ..logs import event
from ..models import GenerationTask
from ..webhooks.dispatch import emit
from .readout import summary_from_task

EVENT = "task.finished"


def task_data(task: GenerationTask) -> dict:
    """The task summary a webhook receives (JSON-safe)."""
    summary = summary_from_task(task)
    return {"task_id": task.id, "state": str(task.state), "outcome": summary.outcome and str(summary.outcome),
            "total": task.total, "completed": task.completed, "failed": task.failed,
            "cancelled": bool(task.cancelled), "cost": round(float(task.cost or 0.0), 6),
            "content_id": task.content_id, "error": task.error,
            "finished_at": task.finished_at.isoformat() + "Z" if task.finished_at else None}


def announce_finished(task: GenerationTask) -> None:
    """Emit ``task.finished`` for an ended task."""
    announce(task.account_id, EVENT, task_data(task), f"task:{task.id}")


def announce(account_id: int, event_name: str, data: dict, subject: str) -> None:
    """Emit ``event_name`` once per ``subject``. Never raises: what ended has ended whatever the
    webhook's fate (a failure here is logged)."""
    try:
        emit(account_id, event_name, data, subject=subject)
    except (SQLAlchemyError, RedisError) as exc:
        db.session.rollback()
        event("webhook_emit_failed", level=30, account=account_id, subject=subject, error=type(exc).__name__)
