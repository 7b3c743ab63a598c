"""Webhook deliveries: one row per event sent (or being sent) to an account's webhook URL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import utcnow

DELIVERY_STATES = ("pending", "delivered", "failed")


class WebhookDelivery(db.Model):
    """One event for one account's webhook: its body, and what each attempt to send it gave.

    ``subject`` ("task:<id>") makes an event about one thing unique, so a task that two paths end
    (the runner and the sweep) is announced once; it is NULL for events that may repeat."""

    __table_args__ = (Index("ix_webhook_delivery_account_created", "account_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    delivery_id: Mapped[str] = mapped_column(String(36), unique=True)
    event: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str | None] = mapped_column(String(120), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    status_code: Mapped[int | None]
    # Why the last attempt failed: short, control characters and markup removed (text.inert).
    last_error: Mapped[str | None] = mapped_column(String(300))
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
