"""Creating a bulk run: one task per article by the queue rule, all in a few statements (a run of
5,000 articles is a handful of batch INSERT/UPDATEs, no RQ job yet: the feeder hands the tasks
to RQ a few at a time, ``scheduling``)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import bindparam, case, insert, select, update

from ..extensions import db
from ..integrations.settings import image_generation_config
from ..logs import event
from ..models import MAX_DB_ID, Content, GenerationTask, Image, Run, utcnow
from ..progress.schema import HELD_STATUSES, RUNNING_STATES, ImageStatus, TaskState
from ..spend.budget import BudgetExceeded, budget_for, estimate, release_many, reserve_many
from . import scheduling
from .requests import QueueError
from .rule import GENERATABLE, plan_queue

MAX_CONTENT_IDS = 10_000
CHUNK = 1000


@dataclass
class CreatedRun:
    """The answer to generate_bulk: the run, its tasks (task_id, content_id, total_images) and the
    articles left out with the reason."""

    run: Run
    tasks: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {"success": True, "run_id": self.run.id, "tasks": self.tasks,
                "total_images": sum(t["total_images"] for t in self.tasks), "skipped": self.skipped}


def parse_bulk_request(body: Any) -> tuple[list[int] | None, bool]:
    """(content_ids, all_missing) of a generate_bulk body; raises QueueError(400)."""
    if not isinstance(body, dict):
        raise QueueError(400, 'Send a JSON object: {"content_ids": [..]} or {"all_missing": true}.')
    unknown = set(body) - {"content_ids", "all_missing"}
    if unknown:
        raise QueueError(400, f"Unknown field(s): {', '.join(sorted(map(str, unknown)))}.")
    ids, all_missing = body.get("content_ids"), body.get("all_missing")
    if all_missing is not None and not isinstance(all_missing, bool):
        raise QueueError(400, "all_missing must be true or false.")
    if ids is not None:
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                and 0 < i <= MAX_DB_ID for i in ids):
            raise QueueError(400, f"content_ids must be a list of whole numbers from 1 to {MAX_DB_ID}.")
        if not ids or len(ids) > MAX_CONTENT_IDS:
            raise QueueError(400, f"content_ids must hold 1 to {MAX_CONTENT_IDS} article ids.")
    if (ids is None) == (not all_missing):
        raise QueueError(400, 'Send either "content_ids" or "all_missing": true (one of them).')
    return (list(dict.fromkeys(ids)) if ids is not None else None), bool(all_missing)


def _chunks(values: list[Any]) -> list[list[Any]]:
    return [values[i:i + CHUNK] for i in range(0, len(values), CHUNK)]


def articles_with_missing(account_id: int) -> list[int]:
    """Ids of the account's articles with a pending or failed image that has a prompt."""
    return list(db.session.scalars(
        select(Image.content_id).where(Image.account_id == account_id, Image.status.in_(GENERATABLE),
                                       Image.prompt != "").distinct().order_by(Image.content_id)))


def _check_owned(account_id: int, content_ids: list[int]) -> None:
    owned: set[int] = set()
    for chunk in _chunks(content_ids):
        owned.update(db.session.scalars(select(Content.id).where(Content.id.in_(chunk),
                                                                 Content.account_id == account_id)))
    missing = [i for i in content_ids if i not in owned]
    if missing:
        raise QueueError(404, f"No article with id {', '.join(map(str, missing[:10]))}"
                              + (f" (and {len(missing) - 10} more)." if len(missing) > 10 else "."))


def _plans(account_id: int, content_ids: list[int], picked: dict[int, set[int]] | None) -> dict[int, list]:
    """Per article, the image rows to queue: the queue rule, or the ``picked`` image ids (retry)."""
    columns = (Image.id, Image.content_id, Image.status, Image.prompt, Image.type, Image.position)
    rows: dict[int, list] = defaultdict(list)
    for chunk in _chunks(content_ids):
        for row in db.session.execute(select(*columns).where(Image.content_id.in_(chunk),
                                                             Image.account_id == account_id)):
            rows[row.content_id].append(row)
    max_in_article = image_generation_config(account_id)["max_in_article_images"]
    if picked is not None:
        return {cid: [r for r in rows[cid] if r.id in picked.get(cid, ()) and r.status not in HELD_STATUSES]
                for cid in content_ids}
    return {cid: plan_queue(rows[cid], max_in_article).images for cid in content_ids}


def create_run(account_id: int, user_id: int | None, source: str, content_ids: list[int] | None = None,
               all_missing: bool = False, picked: dict[int, set[int]] | None = None) -> CreatedRun:
    """Claim each article's images for a task of a new run and put the tasks in line; raises
    QueueError (404 foreign ids, 409 nothing to generate, 503 Redis away: then nothing is queued)."""
    if all_missing:
        content_ids = articles_with_missing(account_id)
    else:
        _check_owned(account_id, content_ids)
    plans = _plans(account_id, content_ids, picked)
    run = Run(id=uuid.uuid4().hex, account_id=account_id, user_id=user_id, source=source)
    created = CreatedRun(run)
    now, tasks, claims = utcnow(), [], []
    for cid in content_ids:
        images = plans.get(cid) or []
        if not images:
            created.skipped.append({"content_id": cid, "reason": "Nothing to generate: its images with a prompt "
                                    "are generated or queued already."})
            continue
        task_id = uuid.uuid4().hex
        tasks.append({"id": task_id, "kind": "bulk", "run_id": run.id, "account_id": account_id, "content_id": cid,
                      "user_id": user_id, "source": source,
                      "image_ids": [img.id for img in images], "state": TaskState.PENDING, "total": len(images),
                      "completed": 0, "failed": 0, "cancelled": False, "cost": 0.0, "created_at": now})
        claims += [{"image": img.id, "task": task_id} for img in images]
    if not tasks:
        raise QueueError(409, "Nothing to generate: every image with a prompt of "
                              + ("these articles" if not all_missing else "your articles")
                              + " is generated or queued already.")
    db.session.add(run)
    db.session.flush()
    db.session.execute(insert(GenerationTask), tasks)
    # One statement, many rows: each image is claimed unless another task holds it meanwhile.
    table = Image.__table__
    db.session.connection().execute(  # (no NOT IN: executemany takes no expanding parameter)
        update(table).where(table.c.id == bindparam("image"),
                            *(table.c.status != status.value for status in HELD_STATUSES))
        .values(status=ImageStatus.QUEUED, task_id=bindparam("task"), error=None), claims)
    _settle_claims(created, tasks)
    _reserve(account_id, created, tasks, plans)
    run.total_tasks, run.total_images = len(created.tasks), sum(t["total_images"] for t in created.tasks)
    db.session.commit()
    _line_up(created, account_id)
    event("run_created", account=account_id, run=run.id, tasks=run.total_tasks, images=run.total_images,
          skipped=len(created.skipped), source=source)
    return created


def _reserve(account_id: int, created: CreatedRun, tasks: list[dict[str, Any]], plans: dict[int, list]) -> None:
    """Hold the run's estimate against the month's budget: every task or none (402, nothing queued)."""
    settings = image_generation_config(account_id)
    rows = {img.id: img for images in plans.values() for img in images}
    kept = {t["task_id"] for t in created.tasks}
    try:
        reserve_many(account_id, {t["id"]: estimate([rows[i] for i in t["image_ids"]], settings)
                                  for t in tasks if t["id"] in kept}, settings["monthly_budget"])
    except BudgetExceeded:
        db.session.rollback()  # the run, its tasks and every claim: nothing is queued
        raise


def _settle_claims(created: CreatedRun, tasks: list[dict[str, Any]]) -> None:
    """Tasks keep the images they really claimed (a click at the same moment may hold some); a task
    that claimed none is removed and its article reported skipped."""
    held: dict[str, list[int]] = defaultdict(list)
    for chunk in _chunks([i for t in tasks for i in t["image_ids"]]):
        for image_id, task_id in db.session.execute(select(Image.id, Image.task_id).where(Image.id.in_(chunk))):
            held[task_id].append(image_id)
    empty = []
    for task in tasks:
        holds = set(held.get(task["id"], ()))
        mine = [i for i in task["image_ids"] if i in holds]
        if not mine:
            empty.append(task["id"])
            created.skipped.append({"content_id": task["content_id"], "reason": "Another batch holds its images."})
            continue
        if len(mine) != len(task["image_ids"]):
            task["image_ids"] = mine
            db.session.execute(update(GenerationTask).filter_by(id=task["id"]).values(image_ids=mine, total=len(mine)))
        created.tasks.append({"task_id": task["id"], "content_id": task["content_id"], "total_images": len(mine)})
    for chunk in _chunks(empty):
        db.session.execute(db.delete(GenerationTask).where(GenerationTask.id.in_(chunk)))
    if not created.tasks:
        db.session.rollback()
        raise QueueError(409, "Nothing to generate: other batches hold these images.")


def _line_up(created: CreatedRun, account_id: int) -> None:
    """Put the tasks in line and feed the workers; with Redis away, the run is released (503)."""
    try:
        scheduling.push(account_id, [t["task_id"] for t in created.tasks])
    except RedisError as exc:
        end_waiting(created.run, error="The job queue is unavailable; try again in a minute.")
        created.run.finished_at = utcnow()
        db.session.commit()
        raise QueueError(503, "The job queue (Redis) is unavailable; nothing was queued. "
                              "Try again in a minute.") from exc
    scheduling.feed()


def preview_run(account_id: int, content_ids: list[int] | None, all_missing: bool) -> dict[str, Any]:
    """What create_run would queue, without claiming anything: {articles, images, skipped,
    estimated_cost, budget, within_budget} (the confirmation dialog's figures and the dry run).
    Raises QueueError(404) for ids outside the account."""
    if all_missing:
        content_ids = articles_with_missing(account_id)
    else:
        _check_owned(account_id, content_ids)
    plans = _plans(account_id, content_ids, None)
    articles = sum(1 for images in plans.values() if images)
    settings = image_generation_config(account_id)
    cost = estimate([img for images in plans.values() for img in images], settings).total
    budget = budget_for(account_id, settings["monthly_budget"])
    return {"articles": articles, "images": sum(len(images) for images in plans.values()),
            "skipped": len(content_ids) - articles, "estimated_cost": cost, "budget": budget.to_dict(),
            "within_budget": budget.remaining is None or cost <= budget.remaining + 1e-9}


def end_waiting(run: Run, error: str | None = None) -> list[str]:
    """Mark the run cancelled and end its tasks still waiting in line (not handed to RQ): SUCCESS and
    cancelled (FAILURE with ``error`` when the run could not be queued), their images back to pending,
    or generated when they have a version. Running tasks are only flagged. Returns the ended ids."""
    running = select(GenerationTask.id).where(GenerationTask.run_id == run.id,
                                              GenerationTask.state.in_(RUNNING_STATES))
    run.cancelled = True
    db.session.execute(update(GenerationTask).where(GenerationTask.id.in_(running)).values(cancelled=True)
                       .execution_options(synchronize_session=False))
    waiting = select(GenerationTask.id).where(GenerationTask.run_id == run.id, GenerationTask.state
                                              == TaskState.PENDING, GenerationTask.enqueued_at.is_(None))
    waiting_ids = list(db.session.scalars(waiting))
    release_many(waiting_ids)
    try:
        scheduling.drop(waiting_ids)
    except RedisError:
        pass  # the feeder hands them to RQ anyway, and the job skips a task that has ended
    db.session.execute(update(GenerationTask).where(GenerationTask.run_id == run.id,
                                                    GenerationTask.enqueued_at.is_(None),
                                                    GenerationTask.state == TaskState.PENDING)
                       .values(state=TaskState.FAILURE if error else TaskState.SUCCESS, error=error,
                               finished_at=utcnow()).execution_options(synchronize_session=False))
    back = case((Image.active_version_id.is_not(None), ImageStatus.GENERATED.value), else_=ImageStatus.PENDING.value)
    for start in range(0, len(waiting_ids), 1000):
        db.session.execute(update(Image).where(Image.status == ImageStatus.QUEUED,
                                               Image.task_id.in_(waiting_ids[start:start + 1000]))
                           .values(status=back, task_id=None).execution_options(synchronize_session=False))
    db.session.commit()
    return waiting_ids
