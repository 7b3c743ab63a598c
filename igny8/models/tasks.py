"""Generation tasks and the account totals kept by database triggers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..content.totals import install_triggers
from ..extensions import db
from ..progress.schema import RUNNING_STATES, TaskState
from .accounts import User
from .base import utcnow
from .content import Content

TASK_KINDS = ("interactive", "bulk")
# Where a task was started: a page of the app (session), the JSON API (Bearer token), the command line.
TASK_SOURCES = ("web", "api", "cli")


class GenerationTask(db.Model):
    __table_args__ = (Index("ix_generation_task_account_created", "account_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # interactive: a click (RQ queue ``images``); bulk: one article of a run, fed to RQ queue ``bulk``
    kind: Mapped[str] = mapped_column(String(12), default=TASK_KINDS[0], server_default=TASK_KINDS[0])
    run_id: Mapped[str | None] = mapped_column(ForeignKey("run.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    content_id: Mapped[int | None] = mapped_column(ForeignKey("content.id"), index=True)
    image_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(20), default=TaskState.PENDING, index=True)
    total: Mapped[int] = mapped_column(default=0)
    completed: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    cancelled: Mapped[bool] = mapped_column(default=False)
    cost: Mapped[float] = mapped_column(default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[datetime | None]  # when its RQ job was enqueued (a bulk task waits before that)
    started_at: Mapped[datetime | None]
    # Written every few seconds by the running job; a stale heartbeat means its worker died.
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Who started it (None: the command line, or a user since deleted) and from where (TASK_SOURCES;
    # None for tasks from before this was recorded).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    source: Mapped[str | None] = mapped_column(String(8))

    content: Mapped[Content | None] = relationship()
    user: Mapped[User | None] = relationship()

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


class AccountTotals(db.Model):
    """An account's totals, kept by database triggers (``content/totals.py``): never written by
    the application, read in one lookup however large the library."""

    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), primary_key=True)
    articles: Mapped[int] = mapped_column(default=0)
    generated: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    cost: Mapped[float] = mapped_column(default=0.0)


@event.listens_for(db.metadata, "after_create")
def _install_totals_triggers(_target: Any, connection: Any, **_kw: Any) -> None:
    install_triggers(connection)
