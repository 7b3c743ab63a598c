"""Articles, their images and every stored version of an image."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..content.alt_text import alt_text_of
from ..extensions import db
from ..progress.schema import ImageStatus
from .base import utcnow


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
            "status": self.status,
            "error": self.error,
            "placeholder": self.placeholder,
            "attempts": self.attempts,
            **_result_fields(self),
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
            **_result_fields(self),
            "created_at": self.created_at.replace(tzinfo=UTC).isoformat(),  # stored as naive UTC
            "active": active,
        }


def _result_fields(row: Image | ImageVersion) -> dict[str, Any]:
    """What an image and each of its versions both show: the files, what made them, what they cost."""
    return {"image_url": row.image_url, "mobile_url": row.mobile_url, "width": row.width, "height": row.height,
            "prompt": row.prompt, "provider": row.provider, "model": row.model, "cost": row.cost}
