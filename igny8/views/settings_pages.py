"""Settings pages: integrations (image generation + provider keys) and the personal API token."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from ..accounts.auth import current_account_id, issue_api_token, require_account_admin, revoke_api_token
from ..extensions import db
from ..integrations.settings import (
    CREDENTIAL_TYPES,
    IMAGE_FORMATS,
    IMAGE_GENERATION_DEFAULTS,
    IMAGE_TYPES,
    MAX_CONCURRENCY,
    MAX_IN_ARTICLE_LIMIT,
    MAX_PARTIAL_IMAGES,
    SettingsError,
    credentials_public,
    default_fields,
    image_generation_config,
    save_credentials,
    save_image_generation,
)
from ..logs import event
from ..providers import DEFAULT_MODELS, MODELS, PROVIDERS
from ..providers.catalog import backgrounds, openai_catalogue
from ..webhooks.deliveries import list_deliveries
from ..webhooks.settings import save_webhook, webhook_public

bp = Blueprint("settings", __name__, url_prefix="/settings")


def _render_integrations(errors: dict[str, dict[str, str]] | None = None, status: int = 200) -> ResponseReturnValue:
    account_id = current_account_id()
    return render_template(
        "settings/integrations.html",
        config=image_generation_config(account_id), defaults=default_fields(account_id),
        default_values=IMAGE_GENERATION_DEFAULTS,
        credentials={p: credentials_public(account_id, p) for p in CREDENTIAL_TYPES},
        providers=PROVIDERS, models=MODELS, default_models=DEFAULT_MODELS,
        image_types=IMAGE_TYPES, formats=IMAGE_FORMATS, max_in_article=MAX_IN_ARTICLE_LIMIT,
        max_concurrency=MAX_CONCURRENCY, max_partial_images=MAX_PARTIAL_IMAGES, errors=errors or {},
        qualities=openai_catalogue()["qualities"], backgrounds=backgrounds(),
        webhook=webhook_public(account_id), deliveries=list_deliveries(account_id, 1, 20)[0],
    ), status


@bp.get("/integrations")
@login_required
def integrations() -> ResponseReturnValue:
    return _render_integrations()


def _image_generation_form() -> dict[str, Any]:
    form = request.form
    changes: dict[str, Any] = {k: form[k] for k in ("provider", "model", "image_type", "image_format", "quality",
                                                    "background") if k in form}
    for name in ("max_in_article_images", "concurrency", "partial_images"):
        if name in form:
            value = form[name].strip()
            changes[name] = int(value) if value.lstrip("-").isdigit() else value
    if "monthly_budget" in form:
        changes["monthly_budget"] = _budget_value(form["monthly_budget"].strip())
    changes["desktop_enabled"] = form.get("desktop_enabled") == "on"
    changes["mobile_enabled"] = form.get("mobile_enabled") == "on"
    return changes


def _budget_value(value: str) -> Any:
    """Empty: no budget; a number: that many dollars; anything else as typed (validation says why)."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return value


@bp.post("/integrations/image_generation")
@login_required
def save_image_generation_form() -> ResponseReturnValue:
    require_account_admin()
    account_id = current_account_id()
    try:
        save_image_generation(account_id, _image_generation_form())
    except SettingsError as exc:
        flash("Image generation settings were not saved; see the messages below.", "error")
        return _render_integrations({"image_generation": exc.errors}, 400)
    db.session.commit()
    event("settings_saved", account=account_id, integration="image_generation")
    flash("Image generation settings saved.", "success")
    return redirect(url_for("settings.integrations"))


@bp.post("/integrations/webhook")
@login_required
def save_webhook_form() -> ResponseReturnValue:
    """The webhook form: a new URL and/or secret (an empty secret field keeps the saved one), or
    "Remove the webhook"."""
    require_account_admin()
    account_id = current_account_id()
    form = request.form
    changes: dict[str, Any] = {}
    if form.get("remove_webhook") == "on":
        changes["url"] = None
    else:
        if form.get("url", "").strip() != (webhook_public(account_id)["url"] or ""):
            changes["url"] = form.get("url", "").strip() or None
        if form.get("secret", "").strip():
            changes["secret"] = form["secret"].strip()
    try:
        save_webhook(account_id, changes)
    except SettingsError as exc:
        flash("Webhook settings were not saved; see the messages below.", "error")
        return _render_integrations({"webhook": exc.errors}, 400)
    db.session.commit()
    event("webhook_saved", account=account_id, configured=webhook_public(account_id)["configured"])
    flash("Webhook settings saved.", "success")
    return redirect(url_for("settings.integrations"))


@bp.post("/integrations/<provider>")
@login_required
def save_credentials_form(provider: str) -> ResponseReturnValue:
    if provider not in CREDENTIAL_TYPES:
        abort(404)
    require_account_admin()
    account_id = current_account_id()
    changes: dict[str, Any] = {}
    if request.form.get("model"):
        changes["model"] = request.form["model"].strip()
    if request.form.get("remove_key") == "on":
        changes["api_key"] = ""
    elif request.form.get("api_key", "").strip():
        changes["api_key"] = request.form["api_key"].strip()
    try:
        save_credentials(account_id, provider, changes)
    except SettingsError as exc:
        flash(f"{provider.title()} settings were not saved; see the messages below.", "error")
        return _render_integrations({provider: exc.errors}, 400)
    db.session.commit()
    event("credentials_saved", account=account_id, integration=provider)
    flash(f"{provider.title()} settings saved.", "success")
    return redirect(url_for("settings.integrations"))


@bp.get("/api-token")
@login_required
def api_token() -> ResponseReturnValue:
    return render_template("settings/api_token.html", new_token=None)


@bp.post("/api-token")
@login_required
def create_api_token() -> ResponseReturnValue:
    token = issue_api_token(current_user)
    db.session.commit()
    event("api_token_created", account=current_user.account_id, user=current_user.id)
    return render_template("settings/api_token.html", new_token=token)


@bp.post("/api-token/revoke")
@login_required
def revoke_token() -> ResponseReturnValue:
    revoke_api_token(current_user)
    db.session.commit()
    event("api_token_revoked", account=current_user.account_id, user=current_user.id)
    flash("API token revoked: scripts using it can no longer connect.", "success")
    return redirect(url_for("settings.api_token"))
