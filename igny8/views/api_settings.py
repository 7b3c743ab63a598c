"""JSON API: integration settings and provider credentials (keys never leave the server)."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify
from flask.typing import ResponseReturnValue

from ..accounts.auth import current_account_id, require_account_admin
from ..extensions import db
from ..integrations.settings import (
    CREDENTIAL_TYPES,
    credentials_public,
    image_generation_config,
    save_credentials,
    save_image_generation,
)
from ..logs import event
from .api_common import api_login_required, json_body

bp = Blueprint("api_settings", __name__, url_prefix="/api/v1/system/integrations")


@bp.get("/image_generation/")
@api_login_required
def get_image_generation() -> ResponseReturnValue:
    return jsonify(success=True, config=image_generation_config(current_account_id()))


@bp.put("/image_generation/")
@api_login_required
def put_image_generation() -> ResponseReturnValue:
    require_account_admin()
    account_id = current_account_id()
    config = save_image_generation(account_id, json_body())
    db.session.commit()
    event("settings_saved", account=account_id, integration="image_generation")
    return jsonify(success=True, config=config)


def _provider(provider: str) -> str:
    if provider not in CREDENTIAL_TYPES:
        abort(404, description=f"Unknown integration {provider!r}; use one of: {', '.join(CREDENTIAL_TYPES)}.")
    return provider


@bp.get("/<provider>/")
@api_login_required
def get_credentials(provider: str) -> ResponseReturnValue:
    return jsonify(success=True, **credentials_public(current_account_id(), _provider(provider)))


@bp.put("/<provider>/")
@api_login_required
def put_credentials(provider: str) -> ResponseReturnValue:
    require_account_admin()
    account_id = current_account_id()
    public = save_credentials(account_id, _provider(provider), json_body())
    db.session.commit()
    event("credentials_saved", account=account_id, integration=provider)
    return jsonify(success=True, **public)
