"""A bulk run once created: its summary (counts, cost, ETA, per-article rows), cancelling it,
retrying its failed images as a new run, and the step each bulk job takes when it ends."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import func, select

from ..extensions import db
from ..integrations.settings import image_generation_config
from ..logs import event
from ..models import Content, GenerationTask, Image, Run, utcnow
from ..progress.keys import task_key
from ..progress.latency import expected_seconds
from ..progress.schema import RUNNING_STATES, ImageStatus, TaskState, TaskSummary
from ..redis_client import get_redis
from . import scheduling
from .announce import announce
from .bulk import CreatedRun, create_run, end_waiting
from .readout import items_from_db, progress_store, result_body, summary_from_task
from .requests import QueueError
from .service import cancel_task

_RUN_ID = re.compile(r"[0-9a-f]{32}")
MAX_ROWS = 10_000


def get_run(account_id: int, run_id: str) -> Run | None:
    if not _RUN_ID.fullmatch(run_id or ""):
        return None
    return db.session.scalar(select(Run).filter_by(id=run_id, account_id=account_id))


def _live(summaries: list[TaskSummary]) -> list[TaskSummary]:
    """Running tasks' counts from Redis (the rows are written when a task ends)."""
    redis = get_redis()
    try:
        pipe = redis.pipeline(transaction=False)
        for summary in summaries:
            pipe.hgetall(task_key(summary.task_id))
        raws = pipe.execute()
    except RedisError:
        return summaries
    return [TaskSummary.from_hash(raw) if raw.get("task_id") else summary
            for summary, raw in zip(summaries, raws, strict=True)]


def task_rows(run: Run) -> list[TaskSummary]:
    rows = db.session.execute(
        select(GenerationTask, Content.title).outerjoin(Content, Content.id == GenerationTask.content_id)
        .where(GenerationTask.run_id == run.id).order_by(GenerationTask.created_at, GenerationTask.id)
        .limit(MAX_ROWS)).all()
    summaries = [TaskSummary(task_id=t.id, state=t.state, total_images=t.total, completed=t.completed,
                             failed=t.failed, cancelled=t.cancelled, content_id=t.content_id,
                             content_title=title or "", cost=t.cost, error=t.error, run_id=run.id)
                 for t, title in rows]
    running = [s for s in summaries if s.state == TaskState.PROGRESS]
    live = {s.task_id: s for s in _live(running)} if running else {}
    return [live.get(s.task_id, s) for s in summaries]


def run_summary(run: Run, with_rows: bool = True) -> dict[str, Any]:
    """The body of GET /api/v1/runs/<id>/: counts, cost, state, ETA (seconds, from the measured latency
    of the account's provider and model, spread over the workers) and one row per article."""
    rows = task_rows(run)
    images = sum(r.total_images for r in rows)
    completed, failed = sum(r.completed for r in rows), sum(r.failed for r in rows)
    running = [r for r in rows if r.state in RUNNING_STATES]
    if running:
        state = "running" if any(r.state == TaskState.PROGRESS or r.completed or r.failed for r in rows) else "queued"
    else:
        state = "cancelled" if run.cancelled else "finished"
    remaining = sum(r.total_images - r.completed - r.failed for r in running)
    eta = None
    if running and not run.cancelled:
        settings = image_generation_config(run.account_id)
        per_image = expected_seconds(get_redis(), settings["provider"], settings["model"])
        try:
            slots = scheduling.slots()
        except RedisError:
            slots = 1
        eta = round(remaining * per_image / slots, 1)
    body = {"success": True, "run_id": run.id, "state": state, "cancelled": run.cancelled, "source": run.source,
            "articles": len(rows), "articles_done": len(rows) - len(running), "images": images,
            "completed": completed, "failed": failed, "remaining": remaining,
            "cost": round(sum(r.cost for r in rows), 6), "eta": eta,
            "created_at": run.created_at.timestamp(),
            "finished_at": run.finished_at.timestamp() if run.finished_at else None}
    if with_rows:
        body["tasks"] = [{"task_id": r.task_id, "content_id": r.content_id, "content_title": r.content_title,
                          "state": r.state, "outcome": r.outcome, "total_images": r.total_images,
                          "completed": r.completed, "failed": r.failed, "cost": r.cost} for r in rows]
    return body


def cancel_run(run: Run, error: str | None = None) -> None:
    """Tasks still in line end now (their images back to pending, or generated when they have a version);
    tasks running stop after the image in flight. Raises QueueError(409) when the run has ended."""
    running = select(GenerationTask.id).where(GenerationTask.run_id == run.id,
                                              GenerationTask.state.in_(RUNNING_STATES))
    if error is None and not db.session.scalar(select(func.count()).select_from(running.subquery())):
        raise QueueError(409, "This run has already finished.")
    waiting_ids = end_waiting(run, error)
    _finish_stepped_aside(run)
    for task in db.session.scalars(select(GenerationTask).where(GenerationTask.id.in_(running))):
        try:
            cancel_task(task)
        except QueueError:
            pass  # it ended meanwhile
    finish_if_done(run.id)
    event("run_cancelled", account=run.account_id, run=run.id, released=len(waiting_ids))


def _finish_stepped_aside(run: Run) -> None:
    """Tasks that had started, then stepped aside for clicks, and were ended while waiting: their
    live progress says so (``done``), as a task that ends in a worker does."""
    ended = db.session.scalars(select(GenerationTask).where(
        GenerationTask.run_id == run.id, GenerationTask.started_at.is_not(None),
        GenerationTask.state.not_in(RUNNING_STATES), GenerationTask.finished_at >= run.created_at))
    store = progress_store()
    for task in ended:
        try:
            summary = store.snapshot(task.id)[0]
        except RedisError:
            continue
        if summary is not None and not summary.finished:
            final, items = summary_from_task(task), items_from_db(task)
            store.finish_task(final, result_body(final, items))


def retry_run(run: Run, user_id: int | None, source: str) -> CreatedRun:
    """The run's failed images (whatever the cap: they were chosen before) as a new run; 409 if none."""
    picked: dict[int, set[int]] = defaultdict(set)
    image_ids = [i for ids in db.session.scalars(select(GenerationTask.image_ids)
                                                 .where(GenerationTask.run_id == run.id)) for i in ids]
    for start in range(0, len(image_ids), 1000):
        for image_id, content_id in db.session.execute(
                select(Image.id, Image.content_id).where(Image.id.in_(image_ids[start:start + 1000]),
                                                         Image.account_id == run.account_id,
                                                         Image.status == ImageStatus.FAILED, Image.prompt != "")):
            picked[content_id].add(image_id)
    if not picked:
        raise QueueError(409, "No failed image in this run: nothing to retry.")
    return create_run(run.account_id, user_id, source, content_ids=sorted(picked), picked=picked)


def finish_if_done(run_id: str | None) -> bool:
    """Stamp the run finished once none of its tasks runs (the hook for a ``run.finished`` webhook)."""
    if run_id is None:
        return False
    run = db.session.get(Run, run_id)
    if run is None or run.finished_at is not None:
        return False
    if db.session.scalar(select(func.count()).where(GenerationTask.run_id == run_id,
                                                    GenerationTask.state.in_(RUNNING_STATES))):
        return False
    run.finished_at = utcnow()
    db.session.commit()
    event("run_finished", account=run.account_id, run=run.id)
    announce_run_finished(run)
    return True


def announce_run_finished(run: Run) -> None:
    """``run.finished`` to the account's webhook, once per run: the run's summary without its rows."""
    data = {k: v for k, v in run_summary(run, with_rows=False).items() if k != "success"}
    announce(run.account_id, "run.finished", data, f"run:{run.id}")


def task_ended(task_id: str) -> None:
    """A bulk job ended (or was skipped): feed the next task and close the run if it was the last."""
    db.session.rollback()
    scheduling.feed()
    finish_if_done(db.session.scalar(select(GenerationTask.run_id).filter_by(id=task_id)))
