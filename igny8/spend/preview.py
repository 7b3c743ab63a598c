"""The dry run of a generate request: what it would queue and cost, and the month's budget;
nothing is written (no task row, no claim, no Redis key, no job)."""

from __future__ import annotations

from typing import Any

from ..extensions import db
from ..integrations.settings import image_generation_config
from ..progress.schema import HELD_STATUSES, ItemStatus, QueueItem
from ..tasks.requests import QueueError, select_images
from .budget import budget_for, estimate


def split_dry_run(body: Any) -> tuple[bool, Any]:
    """(``dry_run``, the body without it); raises QueueError (400) when it is not a boolean."""
    if not isinstance(body, dict) or "dry_run" not in body:
        return False, body
    if not isinstance(body["dry_run"], bool):
        raise QueueError(400, "dry_run must be true or false.")
    return body["dry_run"], {k: v for k, v in body.items() if k != "dry_run"}


def dry_run(account_id: int, body: Any) -> dict[str, Any]:
    """The answer of a dry run: the queue (images a generate would claim: not those a running task
    holds), ``estimated_cost`` (total, and per item), ``budget`` and ``within_budget``."""
    settings = image_generation_config(account_id)
    try:
        images, _content, note = select_images(account_id, body, settings["max_in_article_images"])
        free = [img for img in images if img.status not in HELD_STATUSES]
        planned = estimate(free, settings)
        queue = []
        for index, image in enumerate(free, start=1):
            item = QueueItem.from_image(image, index, image.content.title)
            item.status, item.progress, item.image_url, item.error = ItemStatus.PENDING, 0, None, None
            queue.append({**item.to_dict(), "estimated_cost": planned.per_image[image.id]})
        budget = budget_for(account_id, settings["monthly_budget"])
    finally:
        db.session.rollback()  # only reads were made; end the transaction they opened
    remaining = budget.remaining
    return {"success": True, "dry_run": True, "queue": queue, "estimated_cost": planned.total,
            "budget": budget.to_dict(), "within_budget": remaining is None or planned.total <= remaining + 1e-9,
            "provider": planned.provider, "model": planned.model, "note": note}
