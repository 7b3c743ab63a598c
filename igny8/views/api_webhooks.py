"""JSON API: the account's webhook (``{url, secret}`` in, ``{configured, url}`` out — never the
secret) and its deliveries."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, request
from flask.typing import ResponseReturnValue

from ..accounts.auth import current_account_id, require_account_admin
from ..extensions import db
from ..logs import event
from ..webhooks.deliveries import DEFAULT_PER_PAGE, MAX_PAGE, MAX_PER_PAGE, delivery_public, list_deliveries
from ..webhooks.settings import save_webhook, webhook_public
from .api_common import api_login_required, json_body

bp = Blueprint("api_webhooks", __name__, url_prefix="/api/v1/system/integrations/webhook")


@bp.get("/")
@api_login_required
def get_webhook() -> ResponseReturnValue:
    return jsonify(success=True, **webhook_public(current_account_id()))


@bp.put("/")
@api_login_required
def put_webhook() -> ResponseReturnValue:
    require_account_admin()
    account_id = current_account_id()
    public = save_webhook(account_id, json_body())
    db.session.commit()
    event("webhook_saved", account=account_id, configured=public["configured"])
    return jsonify(success=True, **public)


def _bounded_arg(name: str, default: int, high: int) -> int:
    value = request.args.get(name, "")
    if value == "":
        return default
    if not (value.isascii() and value.isdigit()) or len(value) > 6 or not 1 <= int(value) <= high:
        abort(400, description=f"{name} must be a whole number from 1 to {high}.")
    return int(value)


@bp.get("/deliveries")
@api_login_required
def get_deliveries() -> ResponseReturnValue:
    page = _bounded_arg("page", 1, MAX_PAGE)
    per_page = _bounded_arg("per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    rows, total = list_deliveries(current_account_id(), page, per_page)
    return jsonify(success=True, deliveries=[delivery_public(d) for d in rows], page=page, per_page=per_page,
                   total=total)
