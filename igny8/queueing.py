"""The queue-building rule (from the seed) and queue items shown to users.

Queue for one article: its featured image if pending and prompted, plus its pending, prompted
in-article images sorted by position, at most ``max_in_article_images`` of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update

from .extensions import db
from .models import Content, GenerationTask, Image

# Database status -> the status a user sees on a queue item.
QUEUE_STATUS = {"pending": "pending", "queued": "pending", "processing": "processing",
                "generated": "completed", "failed": "failed"}


def build_queue(images: Iterable[Image], max_in_article: int) -> list[Image]:
    pending = [img for img in images if img.status == "pending" and img.prompt.strip()]
    featured = [img for img in pending if img.type == "featured"][:1]
    in_article = sorted((img for img in pending if img.type == "in_article"), key=lambda i: i.position)
    return featured + in_article[:max(max_in_article, 0)]


def queue_item(image: Image, index: int, content_title: str) -> dict[str, Any]:
    """An ImageQueueItem as DESIGN.md defines it (``index`` counts from 1)."""
    return {
        "image_id": image.id,
        "index": index,
        "label": image.label,
        "type": image.type,
        "position": image.position,
        "content_title": content_title,
        "status": QUEUE_STATUS.get(image.status, image.status),
        "progress": 100 if image.status == "generated" else 0,
        "image_url": image.image_url,
        "error": image.error,
    }


def queue_preview(content: Content, max_in_article: int) -> list[dict[str, Any]]:
    """What a click on Generate Images would queue: rendered into the page so the modal can open
    with every bar before the request is even sent."""
    return [queue_item(img, i, content.title)
            for i, img in enumerate(build_queue(content.images, max_in_article), start=1)]


# ---------------------------------------------------------------- enqueue a batch

class QueueError(Exception):
    """A generate request that cannot be queued; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


MAX_IDS = 100
QUEUE_NAME = "images"
# Ids are INTEGER columns: PostgreSQL refuses a larger number in a query ("integer out of range"),
# so a bigger id can only be a caller's mistake, answered 400 before any query.
MAX_DB_ID = 2**31 - 1


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


def select_images(account_id: int, body: Any, max_in_article: int) -> tuple[list[Image], Content | None]:
    """The images a generate request asks for, account-scoped; raises QueueError (400/404)."""
    ids, content_id = _parse_request(body)
    content = None
    if content_id is not None:
        content = db.session.scalar(select(Content).filter_by(id=content_id, account_id=account_id))
        if content is None:
            raise QueueError(404, f"No article with id {content_id}.")
    if ids is None:
        return build_queue(content.images, max_in_article), content
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
    return images, content


def claim(images: list[Image], task_id: str) -> list[Image]:
    """Atomically mark images ``queued`` for ``task_id`` unless another task holds them.
    The status test is in the UPDATE itself, so two clicks at once cannot both claim an image."""
    if not images:
        return []
    db.session.execute(
        update(Image).where(Image.id.in_([i.id for i in images]), Image.status.not_in(("queued", "processing")))
        .values(status="queued", task_id=task_id, error=None).execution_options(synchronize_session=False)
    )
    ids = [img.id for img in images]
    db.session.scalars(select(Image).where(Image.id.in_(ids)).execution_options(populate_existing=True)).all()
    return [img for img in images if img.task_id == task_id]


def holding_task(account_id: int, images: list[Image], content: Content | None) -> GenerationTask | None:
    """The running task that holds these images (or, for a content_id request, that article's)."""
    task_ids = {img.task_id for img in images if img.status in ("queued", "processing") and img.task_id}
    query = select(GenerationTask).filter_by(account_id=account_id).where(
        GenerationTask.state.in_(("PENDING", "PROGRESS")))
    if task_ids:
        query = query.where(GenerationTask.id.in_(task_ids))
    elif content is not None:
        query = query.filter_by(content_id=content.id)
    else:
        return None
    return db.session.scalars(query.order_by(GenerationTask.created_at.desc())).first()
