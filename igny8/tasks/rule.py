"""The queue-building rule and queue items shown to users.

Queue for one article: its featured image if it is pending or failed and has a prompt, plus its
pending or failed, prompted in-article images sorted by position, as many as
``max_in_article_images`` minus the article's in-article images already generated, queued or
processing. The setting is a cap per article, not per click: a second click while a batch runs
queues nothing more, and a failed image can always be generated again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from ..extensions import db
from ..models import Content, GenerationTask, Image

# Database status -> the status a user sees on a queue item. An item of a cancelled task that
# never started is shown as "cancelled" (its image is back to pending in the database).
QUEUE_STATUS = {"pending": "pending", "queued": "pending", "processing": "processing",
                "generated": "completed", "failed": "failed"}
ITEM_STATUSES = ("pending", "processing", "completed", "failed", "cancelled")


# Image statuses a click may (re)generate, and in-article statuses that use up the article's cap.
GENERATABLE = ("pending", "failed")
COUNTED_IN_CAP = ("generated", "queued", "processing")


@dataclass(frozen=True)
class QueuePlan:
    """What a click on Generate Images queues, and how many in-article images the cap leaves out."""

    images: list[Image]
    max_in_article: int
    left_out: int

    @property
    def note(self) -> str | None:
        """Why some images are not in the queue, in the words the page and the modal show."""
        if not self.left_out:
            return None
        cap = f"max {self.max_in_article} in-article image{'' if self.max_in_article == 1 else 's'} per article"
        return (f"{self.left_out} in-article image{' is' if self.left_out == 1 else 's are'} left out: "
                f"{cap} — change it in Settings.")


def plan_queue(images: Iterable[Image], max_in_article: int) -> QueuePlan:
    """The queue rule for one article's images (see the module docstring)."""
    images = list(images)
    ready = [img for img in images if img.status in GENERATABLE and img.prompt.strip()]
    featured = [img for img in ready if img.type == "featured"][:1]
    in_article = sorted((img for img in ready if img.type == "in_article"), key=lambda i: i.position)
    used = sum(1 for img in images if img.type == "in_article" and img.status in COUNTED_IN_CAP)
    room = max(max_in_article - used, 0)
    return QueuePlan(featured + in_article[:room], max_in_article, max(len(in_article) - room, 0))


def build_queue(images: Iterable[Image], max_in_article: int) -> list[Image]:
    return plan_queue(images, max_in_article).images


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


@dataclass(frozen=True)
class QueuePreview:
    items: list[dict[str, Any]]
    note: str | None


def queue_preview(content: Content, max_in_article: int) -> QueuePreview:
    """What a click on Generate Images would queue (and why others are left out): rendered into
    the page so the modal can open with every bar before the request is even sent."""
    plan = plan_queue(content.images, max_in_article)
    return QueuePreview([queue_item(img, i, content.title) for i, img in enumerate(plan.images, start=1)],
                        plan.note)


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
