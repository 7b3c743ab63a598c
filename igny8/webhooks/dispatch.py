"""``emit``: announce an event to the account's webhook — the one entry point for every event
(``task.finished`` from the task paths, ``run.finished`` and ``budget.threshold`` from their
owners). It writes the delivery row and queues its first attempt on the ``webhooks`` RQ queue;
the sending happens in a worker, never in the request or job that emits."""

from __future__ import annotations

import uuid
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..logs import event
from ..models import WebhookDelivery, utcnow
from .delivery import enqueue_delivery
from .settings import webhook_public


def emit(account_id: int, event_name: str, data: dict[str, Any], *, subject: str | None = None) -> str | None:
    """Create the delivery of ``{"event": event_name, "data": data}`` and queue it; returns its
    delivery id. None when the account has no webhook (nothing is written) or when an event with
    the same ``subject`` (say ``"task:<id>"``) was emitted already: each is announced once.
    Commits its own row; call it after the caller's own commit. ``data`` must be JSON-safe."""
    if not webhook_public(account_id)["configured"]:
        return None
    delivery = WebhookDelivery(account_id=account_id, delivery_id=str(uuid.uuid4()), event=event_name,
                               subject=subject, payload={"event": event_name, "data": data},
                               next_attempt_at=utcnow())
    db.session.add(delivery)
    try:
        db.session.commit()
    except IntegrityError:  # the same subject twice: announced already
        db.session.rollback()
        return None
    try:
        enqueue_delivery(delivery)
    except RedisError as exc:  # the row stays pending; the sweep queues it again (resume_pending)
        event("webhook_enqueue_failed", level=30, account=account_id, delivery=delivery.delivery_id, error=exc)
    event("webhook_queued", account=account_id, delivery=delivery.delivery_id, webhook_event=event_name)
    return delivery.delivery_id
