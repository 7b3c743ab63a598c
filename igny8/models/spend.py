"""Spend: what is held for images queued (reservations) and what images cost (the ledger).

Neither has a foreign key to an image, article or task: the ledger is the account's history
and outlives a deleted article; a reservation lives only while its task runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import utcnow


class SpendReservation(db.Model):
    """The estimated cost of one image of a running task, held against the account's budget from
    the enqueue until the image is settled (stored or failed) or its task ends."""

    __table_args__ = (Index("ix_spend_reservation_task_image", "task_id", "image_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    task_id: Mapped[str] = mapped_column(String(64))
    image_id: Mapped[int]
    provider: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(120))
    amount: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SpendEntry(db.Model):
    """One image outcome of a task: ``generated`` or ``failed``, with what it cost (a failed image
    the provider billed carries its cost). The truth of "spent" and of the usage report."""

    __table_args__ = (Index("ix_spend_entry_account_created", "account_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    task_id: Mapped[str | None] = mapped_column(String(64))
    image_id: Mapped[int]
    content_id: Mapped[int | None]
    provider: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(120))
    outcome: Mapped[str] = mapped_column(String(20))
    cost: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
