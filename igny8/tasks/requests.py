"""A generate request: its body checked, the images it asks for (account-scoped), and their
claim for a new task, atomic so that two clicks at once never queue an image twice."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from ..extensions import db
from ..models import MAX_DB_ID, Content, GenerationTask, Image
from ..progress.schema import HELD_STATUSES, RUNNING_STATES, ImageStatus
from .rule import plan_queue


class QueueError(Exception):
    """A generate request that cannot be queued; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


MAX_IDS = 100


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_DB_ID


def _parse_request(body: Any) -> tuple[list[int] | None, int | None]:
    if not isinstance(body, dict):
        raise QueueError(400, 'Send a JSON object: {"ids": [..]} and/or {"content_id": n}.')
    unknown = set(body) - {"ids", "content_id"}
    if unknown:
        raise QueueError(400, f"Unknown field(s): {', '.join(sorted(unknown))}.")
    ids, content_id = body.get("ids"), body.get("content_id")
    if ids is not None:
        if not isinstance(ids, list) or not all(_positive_int(i) for i in ids):
            raise QueueError(400, f"ids must be a list of whole numbers from 1 to {MAX_DB_ID}.")
        if not ids or len(ids) > MAX_IDS:
            raise QueueError(400, f"ids must hold 1 to {MAX_IDS} image ids.")
        ids = list(dict.fromkeys(ids))
    if content_id is not None and not _positive_int(content_id):
        raise QueueError(400, f"content_id must be a whole number from 1 to {MAX_DB_ID}.")
    if ids is None and content_id is None:
        raise QueueError(400, "Send ids, content_id, or both.")
    return ids, content_id


def select_images(account_id: int, body: Any, max_in_article: int) -> tuple[list[Image], Content | None, str | None]:
    """The images a generate request asks for, account-scoped, and the note of what the cap left
    out (None for explicit ids, which are honoured whatever the cap); raises QueueError (400/404)."""
    ids, content_id = _parse_request(body)
    content = None
    if content_id is not None:
        content = db.session.scalar(select(Content).filter_by(id=content_id, account_id=account_id))
        if content is None:
            raise QueueError(404, f"No article with id {content_id}.")
    if ids is None:
        plan = plan_queue(content.images, max_in_article)
        return plan.images, content, plan.note
    found = {img.id: img for img in db.session.scalars(
        select(Image).where(Image.id.in_(ids), Image.account_id == account_id))}
    missing = [i for i in ids if i not in found]
    if missing:
        raise QueueError(404, f"No image with id {', '.join(map(str, missing[:10]))}.")
    images = [found[i] for i in ids]
    if content is not None and any(img.content_id != content.id for img in images):
        raise QueueError(400, f"Some ids are not images of article {content.id}.")
    empty = [img.id for img in images if not img.prompt.strip()]
    if empty:
        raise QueueError(400, f"Image {', '.join(map(str, empty))} has no prompt; add one first.")
    return images, content, None


def claim(images: list[Image], task_id: str) -> list[Image]:
    """Atomically mark images ``queued`` for ``task_id`` unless another task holds them.
    The status test is in the UPDATE itself, so two clicks at once cannot both claim an image."""
    if not images:
        return []
    claimed = set(db.session.scalars(
        update(Image).where(Image.id.in_([i.id for i in images]), Image.status.not_in(HELD_STATUSES))
        .values(status=ImageStatus.QUEUED, task_id=task_id, error=None).returning(Image.id)
        .execution_options(synchronize_session=False)
    ))
    for img in images:  # what the UPDATE wrote, without reading the rows again
        if img.id in claimed:
            for name, value in (("status", ImageStatus.QUEUED.value), ("task_id", task_id), ("error", None)):
                set_committed_value(img, name, value)
    return [img for img in images if img.id in claimed]


def holding_task(account_id: int, images: list[Image], content: Content | None) -> GenerationTask | None:
    """The running task that holds these images (or, for a content_id request, that article's)."""
    task_ids = {img.task_id for img in images if img.status in HELD_STATUSES and img.task_id}
    query = select(GenerationTask).filter_by(account_id=account_id).where(
        GenerationTask.state.in_(RUNNING_STATES))
    if task_ids:
        query = query.where(GenerationTask.id.in_(task_ids))
    elif content is not None:
        query = query.filter_by(content_id=content.id)
    else:
        return None
    return db.session.scalars(query.order_by(GenerationTask.created_at.desc())).first()
