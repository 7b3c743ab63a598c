"""Integration settings per account: defaults, validation, and API-key encryption at rest.

Keys are encrypted with Fernet under a key derived from ``SECRET_KEY`` (HKDF), so a database dump
alone does not reveal them. They are decrypted only to call the provider, and only a masked hint
(last four characters) is ever rendered or returned.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..models import IntegrationSettings
from ..providers import DEFAULT_MODELS, MODELS, PROVIDERS, retired_model_message
from ..providers.catalog import backgrounds, openai_catalogue, qualities_for

IMAGE_TYPES = ("realistic", "artistic", "illustration", "cartoon")
IMAGE_FORMATS = ("webp", "png", "jpeg")
MAX_IN_ARTICLE_LIMIT = 10
MAX_CONCURRENCY = 4
MAX_MONTHLY_BUDGET = 1_000_000
MAX_PARTIAL_IMAGES = 3  # OpenAI streams 0-3 partial previews; each is billed (openai_provider)
CREDENTIAL_TYPES = ("openai", "runware")

IMAGE_GENERATION_DEFAULTS: dict[str, Any] = {
    "provider": "openai",
    "model": "gpt-image-2",
    "image_type": "realistic",
    "max_in_article_images": 2,
    "image_format": "webp",
    "desktop_enabled": True,
    "mobile_enabled": True,
    "concurrency": 1,
    "quality": "medium",  # OpenAI: low | medium | high | auto (+ xhigh, max on gpt-image-2.5-*)
    "background": "auto",  # OpenAI: auto | opaque | transparent
    # Partial previews per image while it is made (OpenAI streams them; each costs extra tokens).
    "partial_images": 1,
    "monthly_budget": None,  # USD per calendar month (UTC); None = no budget (igny8/spend/budget.py)
}
# Runware accepts any model by its AIR id ("runware:100@1", "civitai:4384@130072").
_AIR_ID = re.compile(r"^[a-z0-9_-]{1,40}:\d{1,12}@\d{1,12}$")
_KEY_CHARS = re.compile(r"^[\x21-\x7e]{8,400}$")


class SettingsError(ValueError):
    """Invalid settings; ``errors`` maps each field to a message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


# ---------------------------------------------------------------- encryption

def _fernet() -> Fernet:
    secret = current_app.config["SECRET_KEY"].encode()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"igny8", info=b"api-keys").derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_key(api_key: str) -> str:
    return _fernet().encrypt(api_key.encode()).decode()


def decrypt_key(token: str | None) -> str | None:
    """Return the plain key, or None when there is none or it cannot be decrypted
    (for example after ``SECRET_KEY`` changed: the user must save the key again)."""
    if not token:
        return None
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        current_app.logger.warning("stored api key cannot be decrypted (SECRET_KEY changed?)")
        return None


def safety_identifier(account_id: int) -> str:
    """A stable, non-reversible name for the account that OpenAI receives as ``safety_identifier``
    (its rule for multi-tenant apps: one tenant's abuse is not blamed on the whole key). HMAC-SHA256
    of the account id under a key derived from ``SECRET_KEY``, 32 hex characters: the same for
    every call of an account, different between accounts, and neither the id nor an e-mail."""
    secret = current_app.config["SECRET_KEY"].encode()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"igny8", info=b"safety-identifier").derive(secret)
    return hmac.new(key, f"account:{account_id}".encode(), hashlib.sha256).hexdigest()[:32]


def key_hint(api_key: str) -> str:
    return "••••" + api_key[-4:]


# ---------------------------------------------------------------- storage of rows

def _row(account_id: int, integration_type: str) -> IntegrationSettings | None:
    return db.session.scalar(
        select(IntegrationSettings).filter_by(account_id=account_id, integration_type=integration_type)
    )


def _row_or_new(account_id: int, integration_type: str) -> IntegrationSettings:
    row = _row(account_id, integration_type)
    if row is None:
        row = IntegrationSettings(account_id=account_id, integration_type=integration_type, config={})
        db.session.add(row)
    return row


# ---------------------------------------------------------------- image generation

def image_generation_config(account_id: int) -> dict[str, Any]:
    """The account's settings with every missing field filled from the defaults."""
    row = _row(account_id, "image_generation")
    stored = dict(row.config) if row else {}
    return {**IMAGE_GENERATION_DEFAULTS, **{k: v for k, v in stored.items() if k in IMAGE_GENERATION_DEFAULTS}}


def default_fields(account_id: int) -> set[str]:
    """Fields that the account has not set itself (shown as "default" in Settings)."""
    row = _row(account_id, "image_generation")
    stored = row.config if row else {}
    return {k for k in IMAGE_GENERATION_DEFAULTS if k not in stored}


def validate_model(provider: str, model: Any) -> str | None:
    """Return an error message for a model that does not fit the provider, else None."""
    if not isinstance(model, str) or not model.strip():
        return "Choose a model."
    retired = retired_model_message(model)
    if retired:
        return retired
    if model in MODELS.get(provider, ()):
        return None
    if provider == "runware" and _AIR_ID.match(model):
        return None
    return f"{model!r} is not a model of {provider}; choose one of: {', '.join(MODELS.get(provider, ()))}."


def _check_choice(value: Any, choices: tuple[str, ...]) -> str | None:
    if value not in choices:
        return f"Must be one of: {', '.join(choices)}."
    return None


def _check_int(value: Any, low: int, high: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return f"Must be a whole number from {low} to {high}."
    return None


def _check_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "Must be true or false."


def _check_budget(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value \
            or not 0 <= value <= MAX_MONTHLY_BUDGET:
        return f"Must be a number of US dollars from 0 to {MAX_MONTHLY_BUDGET:,}, or null for no budget."
    return None


def validate_image_generation(current: dict[str, Any], changes: Any) -> dict[str, Any]:
    """Merge ``changes`` into ``current`` and validate; raise SettingsError with per-field errors."""
    if not isinstance(changes, dict):
        raise SettingsError({"body": "Send a JSON object of settings."})
    errors = {k: "Unknown setting." for k in changes if k not in IMAGE_GENERATION_DEFAULTS}
    merged = {**current, **{k: v for k, v in changes.items() if k in IMAGE_GENERATION_DEFAULTS}}
    if "provider" in changes and "model" not in changes and changes["provider"] in DEFAULT_MODELS:
        merged["model"] = DEFAULT_MODELS[changes["provider"]]
    checks = {
        "provider": _check_choice(merged["provider"], PROVIDERS),
        "image_type": _check_choice(merged["image_type"], IMAGE_TYPES),
        "image_format": _check_choice(merged["image_format"], IMAGE_FORMATS),
        "max_in_article_images": _check_int(merged["max_in_article_images"], 0, MAX_IN_ARTICLE_LIMIT),
        "concurrency": _check_int(merged["concurrency"], 1, MAX_CONCURRENCY),
        "partial_images": _check_int(merged["partial_images"], 0, MAX_PARTIAL_IMAGES),
        "desktop_enabled": _check_bool(merged["desktop_enabled"]),
        "mobile_enabled": _check_bool(merged["mobile_enabled"]),
        "monthly_budget": _check_budget(merged["monthly_budget"]),
    }
    if checks["provider"] is None:
        checks["model"] = validate_model(merged["provider"], merged["model"])
    checks["quality"] = _check_choice(merged["quality"], openai_catalogue()["qualities"])
    if not checks["quality"] and merged["provider"] == "openai" and not checks.get("model"):
        allowed = qualities_for(merged["model"])
        if merged["quality"] not in allowed:
            checks["quality"] = f"{merged['model']} supports the qualities: {', '.join(allowed)}."
    checks["background"] = _check_choice(merged["background"], backgrounds())
    errors.update({k: v for k, v in checks.items() if v})
    if errors:
        raise SettingsError(errors)
    return merged


def save_image_generation(account_id: int, changes: Any) -> dict[str, Any]:
    """Validate and store; the caller commits. Returns the full config."""
    merged = validate_image_generation(image_generation_config(account_id), changes)
    row = _row_or_new(account_id, "image_generation")
    stored = dict(row.config or {})
    stored.update({k: merged[k] for k in changes if k in IMAGE_GENERATION_DEFAULTS})
    stored["model"] = merged["model"]
    stored["provider"] = merged["provider"]
    row.config = stored
    return merged


# ---------------------------------------------------------------- provider credentials

def credentials_public(account_id: int, provider: str) -> dict[str, Any]:
    """What may leave the server about a provider's credentials: never the key."""
    row = _row(account_id, provider)
    model = (row.config or {}).get("model") if row else None
    return {
        "configured": bool(row and row.api_key_encrypted),
        "key_hint": row.key_hint if row and row.api_key_encrypted else None,
        "model": model or DEFAULT_MODELS[provider],
    }


def provider_api_key(account_id: int, provider: str) -> str | None:
    row = _row(account_id, provider)
    return decrypt_key(row.api_key_encrypted) if row else None


def save_credentials(account_id: int, provider: str, changes: Any) -> dict[str, Any]:
    """``api_key`` omitted keeps the stored key, ``""``/null removes it. The caller commits."""
    if not isinstance(changes, dict):
        raise SettingsError({"body": "Send a JSON object with api_key and/or model."})
    errors = {k: "Unknown field." for k in changes if k not in ("api_key", "model")}
    api_key = changes.get("api_key")
    if api_key not in (None, "") and (not isinstance(api_key, str) or not _KEY_CHARS.match(api_key.strip())):
        errors["api_key"] = "An API key is 8 to 400 printable characters without spaces."
    if "model" in changes:
        message = validate_model(provider, changes["model"])
        if message:
            errors["model"] = message
    if errors:
        raise SettingsError(errors)
    row = _row_or_new(account_id, provider)
    if "model" in changes:
        row.config = {**(row.config or {}), "model": changes["model"]}
    if "api_key" in changes:
        key = (api_key or "").strip()
        row.api_key_encrypted = encrypt_key(key) if key else None
        row.key_hint = key_hint(key) if key else None
    db.session.flush()
    return credentials_public(account_id, provider)
