"""Bulk runs: many generation tasks (one per article) created together and watched as one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import utcnow

RUN_SOURCES = ("web", "api", "cli")


class Run(db.Model):
    """A bulk run. Its tasks carry ``run_id``; its counts are read from them (``tasks/runs.py``).
    ``total_tasks`` and ``total_images`` are what was queued when the run was created."""

    __table_args__ = (Index("ix_run_account_created", "account_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    source: Mapped[str] = mapped_column(String(10), default="api")
    total_tasks: Mapped[int] = mapped_column(default=0)
    total_images: Mapped[int] = mapped_column(default=0)
    cancelled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
