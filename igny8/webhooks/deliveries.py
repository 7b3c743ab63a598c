"""Reading an account's deliveries (the API list and the Settings page): newest first, paged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from ..extensions import db
from ..models import WebhookDelivery

MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 20
MAX_PAGE = 10_000


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment else None


def delivery_public(delivery: WebhookDelivery) -> dict[str, Any]:
    """One delivery as the API lists it (never the secret; the body is the receiver's to keep)."""
    return {"id": delivery.id, "delivery": delivery.delivery_id, "event": delivery.event, "state": delivery.state,
            "attempts": delivery.attempts, "status_code": delivery.status_code, "error": delivery.last_error,
            "created_at": _iso(delivery.created_at), "delivered_at": _iso(delivery.delivered_at)}


def list_deliveries(account_id: int, page: int = 1, per_page: int = DEFAULT_PER_PAGE
                    ) -> tuple[list[WebhookDelivery], int]:
    """The account's deliveries on ``page`` (newest first) and how many there are in all."""
    scoped = select(WebhookDelivery).where(WebhookDelivery.account_id == account_id)
    total = db.session.scalar(select(func.count()).select_from(scoped.subquery())) or 0
    rows = db.session.scalars(scoped.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
                              .limit(per_page).offset((page - 1) * per_page)).all()
    return list(rows), total
