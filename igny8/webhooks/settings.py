"""The ``webhook`` integration of an account: ``{url, secret}`` in, ``{configured, url}`` out.

The URL is vetted under the URL policy (DESIGN.md, "Fetching a URL that the operator did not
configure") when it is saved, and again before every delivery. The secret is write-only: stored
encrypted like the provider keys (``integrations.settings.encrypt_key``), decrypted only to sign
a delivery in the worker, never rendered, logged or returned.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..integrations.settings import SettingsError, decrypt_key, encrypt_key
from ..models import IntegrationSettings
from ..outbound.urlpolicy import FetchFailed, URLRefused, check_url

INTEGRATION = "webhook"
MAX_URL = 2000
SECRET_PATTERN = "^[!-~]{16,400}$"
_SECRET = re.compile(SECRET_PATTERN)
_URL_TEXT = re.compile(r"^[!-~]+$")  # printable ASCII without spaces (an IDN host goes in punycode)


@dataclass(frozen=True)
class WebhookTarget:
    """Where and how an account's deliveries go (the secret in plain text: worker only)."""

    url: str
    secret: str


def _row(account_id: int) -> IntegrationSettings | None:
    return db.session.scalar(select(IntegrationSettings).filter_by(account_id=account_id,
                                                                   integration_type=INTEGRATION))


def webhook_public(account_id: int) -> dict[str, Any]:
    """What may leave the server: whether a webhook is set, and its URL. Never the secret."""
    row = _row(account_id)
    url = (row.config or {}).get("url") if row else None
    return {"configured": bool(url and row.api_key_encrypted), "url": url or None}


def webhook_target(account_id: int) -> WebhookTarget | None:
    """The account's URL and secret, or None when no webhook is set (or the secret cannot be
    decrypted after a ``SECRET_KEY`` change: the admin must save it again)."""
    row = _row(account_id)
    url = (row.config or {}).get("url") if row else None
    secret = decrypt_key(row.api_key_encrypted) if row and url else None
    return WebhookTarget(url, secret) if url and secret else None


def url_problem(url: str, allowed_http_hosts: Collection[str] | str) -> str | None:
    """Why ``url`` may not receive webhooks now (the URL policy, after DNS), or None."""
    try:
        check_url(url, allowed_http_hosts=allowed_http_hosts)
    except URLRefused as exc:
        return f"This URL is refused: {exc}."
    except FetchFailed as exc:
        return f"This URL cannot be reached: {exc}."
    return None


def _validate(row: IntegrationSettings | None, changes: Any) -> dict[str, str]:
    if not isinstance(changes, dict):
        return {"body": "Send a JSON object with url and/or secret."}
    errors = {k: "Unknown field; send url and/or secret." for k in changes if k not in ("url", "secret")}
    url, secret = changes.get("url"), changes.get("secret")
    clearing = "url" in changes and url in (None, "")
    if "url" in changes and not clearing:
        if not isinstance(url, str) or len(url) > MAX_URL or not _URL_TEXT.match(url):
            errors["url"] = f"A URL is up to {MAX_URL} printable characters without spaces (https://…)."
        elif problem := url_problem(url, current_app.config.get("ALLOWED_HTTP_HOSTS", ())):
            errors["url"] = problem
    if "secret" in changes and (not isinstance(secret, str) or not _SECRET.match(secret)):
        errors["secret"] = "A secret is 16 to 400 printable characters without spaces."
    has_secret = bool(row and row.api_key_encrypted)
    if "url" in changes and not clearing and "secret" not in changes and not has_secret:
        errors.setdefault("secret", "Set a secret: every delivery is signed with it.")
    if "secret" in changes and "url" not in changes and not (row and (row.config or {}).get("url")):
        errors.setdefault("url", "Set the URL the deliveries go to.")
    return errors


def save_webhook(account_id: int, changes: Any) -> dict[str, Any]:
    """Validate and store (the caller commits): ``url`` null or "" removes the webhook and its
    secret; ``secret`` omitted keeps the stored one. Raises SettingsError (400 per field)."""
    row = _row(account_id)
    errors = _validate(row, changes)
    if errors:
        raise SettingsError(errors)
    if "url" in changes and changes["url"] in (None, ""):
        if row is not None:
            row.config, row.api_key_encrypted, row.key_hint = {}, None, None
        db.session.flush()
        return webhook_public(account_id)
    if not changes:
        return webhook_public(account_id)
    if row is None:
        row = IntegrationSettings(account_id=account_id, integration_type=INTEGRATION, config={})
        db.session.add(row)
    if "url" in changes:
        row.config = {**(row.config or {}), "url": changes["url"]}
    if "secret" in changes:
        row.api_key_encrypted, row.key_hint = encrypt_key(changes["secret"]), None
    db.session.flush()
    return webhook_public(account_id)
