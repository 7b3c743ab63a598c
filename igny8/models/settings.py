"""Per-account integration settings (provider keys encrypted) and prompt templates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import utcnow


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
