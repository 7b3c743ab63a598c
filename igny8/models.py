"""Typed SQLAlchemy 2.0 models. Every row that belongs to a customer carries ``account_id``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, event
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .content.alt_text import alt_text_of
from .content.totals import install_triggers
from .extensions import db
from .progress.schema import RUNNING_STATES, ImageStatus, TaskState

IMAGE_STATUSES = tuple(ImageStatus)
IMAGE_TYPES = ("featured", "in_article")
TASK_STATES = tuple(TaskState)
# Ids are INTEGER columns: PostgreSQL refuses a larger number in a query ("integer out of range"),
# so a bigger id can only be a caller's mistake, answered 400 or 404 before any query.
MAX_DB_ID = 2**31 - 1
INTEGRATION_TYPES = ("image_generation", "openai", "runware")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Account(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    users: Mapped[list[User]] = relationship(back_populates="account")


class User(UserMixin, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # Manages the account's users, settings and provider keys.
    is_admin: Mapped[bool] = mapped_column(default=False)
    # Platform staff, apart from account admins: the queue dashboard (/rq) and /metrics show every
    # account's work, so they are for operators only.
    is_operator: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    # Only the SHA-256 of the personal API token is kept; the token is shown once.
    api_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    api_token_hint: Mapped[str | None] = mapped_column(String(16))
    api_token_created_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship(back_populates="users")


class Content(db.Model):
    # The Images page lists an account's articles newest first: (account_id, id) serves it in order.
    __table_args__ = (Index("ix_content_account_id_id", "account_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    html: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="draft")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    images: Mapped[list[Image]] = relationship(
        back_populates="content",
        order_by="(Image.type, Image.position)",
        cascade="all, delete-orphan",
    )


class Image(db.Model):
    __table_args__ = (
        UniqueConstraint("content_id", "type", "position", name="uq_image_content_type_position"),
        # The status filter of the Images page: counted from this index alone, each article probed by the next.
        Index("ix_image_account_status_content", "account_id", "status", "content_id"),
        Index("ix_image_content_status", "content_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    content_id: Mapped[int] = mapped_column(ForeignKey("content.id"), index=True)
    type: Mapped[str] = mapped_column(String(20))
    position: Mapped[int] = mapped_column(default=0)
    prompt: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=ImageStatus.PENDING)
    # The task that holds this image while it is queued or processing.
    task_id: Mapped[str | None] = mapped_column(String(64), index=True)
    image_url: Mapped[str | None] = mapped_column(String(500))
    mobile_url: Mapped[str | None] = mapped_column(String(500))
    desktop_path: Mapped[str | None] = mapped_column(String(500))
    mobile_path: Mapped[str | None] = mapped_column(String(500))
    width: Mapped[int | None]
    height: Mapped[int | None]
    format: Mapped[str | None] = mapped_column(String(10))
    bytes: Mapped[int | None]
    provider: Mapped[str | None] = mapped_column(String(20))
    model: Mapped[str | None] = mapped_column(String(80))
    placeholder: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    cost: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    generated_at: Mapped[datetime | None]
    # What a screen reader says (drafted from the prompt and the title when unset) and the caption.
    alt_text: Mapped[str | None] = mapped_column(Text)
    caption: Mapped[str | None] = mapped_column(Text)
    # The version shown; the file columns above mirror it (``content/versions.activate``). The two
    # tables point at each other, so this key is added after both exist (``use_alter``).
    active_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("image_version.id", use_alter=True, name="fk_image_active_version_id"))

    content: Mapped[Content] = relationship(back_populates="images")
    versions: Mapped[list[ImageVersion]] = relationship(
        back_populates="image", foreign_keys="ImageVersion.image_id", order_by="ImageVersion.id",
        cascade="all, delete-orphan")
    # post_update: the key is written in a second UPDATE, which breaks the insert/delete cycle.
    active_version: Mapped[ImageVersion | None] = relationship(foreign_keys=[active_version_id], post_update=True)

    @property
    def label(self) -> str:
        return "Featured Image" if self.type == "featured" else f"In-Article Image {self.position}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "content_id": self.content_id,
            "type": self.type,
            "position": self.position,
            "prompt": self.prompt,
            "status": self.status,
            "image_url": self.image_url,
            "mobile_url": self.mobile_url,
            "error": self.error,
            "provider": self.provider,
            "model": self.model,
            "placeholder": self.placeholder,
            "attempts": self.attempts,
            "cost": self.cost,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "alt_text": alt_text_of(self),
            "alt_text_drafted": not (self.alt_text or "").strip(),
            "caption": self.caption,
            "version_count": len(self.versions),
            "active_version_id": self.active_version_id,
        }


class ImageVersion(db.Model):
    """One stored (paid-for) result of an image: its files, what made it and what it cost. Never
    overwritten by a later generation; deleted only on purpose (``content/versions.delete_version``)."""

    __tablename__ = "image_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("image.id"), index=True)
    desktop_path: Mapped[str | None] = mapped_column(String(500))
    mobile_path: Mapped[str | None] = mapped_column(String(500))
    image_url: Mapped[str | None] = mapped_column(String(500))
    mobile_url: Mapped[str | None] = mapped_column(String(500))
    width: Mapped[int | None]
    height: Mapped[int | None]
    format: Mapped[str | None] = mapped_column(String(10))
    bytes: Mapped[int | None]
    provider: Mapped[str | None] = mapped_column(String(20))
    model: Mapped[str | None] = mapped_column(String(80))
    placeholder: Mapped[bool] = mapped_column(default=False)
    prompt: Mapped[str] = mapped_column(Text, default="")  # the image prompt it was made from
    cost: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    image: Mapped[Image] = relationship(back_populates="versions", foreign_keys=[image_id])

    @property
    def keys(self) -> list[str]:
        """The media store keys of its files."""
        return [key for key in (self.desktop_path, self.mobile_path) if key]

    def to_dict(self, active: bool) -> dict[str, Any]:
        return {
            "id": self.id,
            "image_url": self.image_url,
            "mobile_url": self.mobile_url,
            "width": self.width,
            "height": self.height,
            "prompt": self.prompt,
            "provider": self.provider,
            "model": self.model,
            "cost": self.cost,
            "created_at": self.created_at.replace(tzinfo=UTC).isoformat(),  # stored as naive UTC
            "active": active,
        }


class IntegrationSettings(db.Model):
    __table_args__ = (UniqueConstraint("account_id", "integration_type", name="uq_integration"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    integration_type: Mapped[str] = mapped_column(String(30))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Fernet token of the provider API key; never decrypted outside the worker/provider call.
    api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    key_hint: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PromptTemplate(db.Model):
    """An account's override (``account_id`` set) or the default (``account_id`` NULL)."""

    __table_args__ = (UniqueConstraint("account_id", "prompt_type", name="uq_prompt_template"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), index=True)
    prompt_type: Mapped[str] = mapped_column(String(40))
    template: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GenerationTask(db.Model):
    __table_args__ = (Index("ix_generation_task_account_created", "account_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
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
    started_at: Mapped[datetime | None]
    # Written every few seconds by the running job; a stale heartbeat means its worker died.
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    content: Mapped[Content | None] = relationship()

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
