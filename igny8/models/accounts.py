"""Accounts and their users."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import utcnow


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
