"""JSON API: articles and their images."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, request

from ..accounts.auth import current_account_id
from ..content.articles import article_dict, create_article, list_content, list_images, validate_article
from ..extensions import db
from ..logs import event
from ..models import IMAGE_STATUSES
from .api_common import api_login_required, int_arg, json_body

bp = Blueprint("api_writer", __name__, url_prefix="/api/v1/writer")


@bp.get("/content/")
@api_login_required
def content_list():  # noqa: ANN201
    return jsonify(success=True, content=[article_dict(c) for c in list_content(current_account_id())])


@bp.post("/content/")
@api_login_required
def content_create():  # noqa: ANN201
    account_id = current_account_id()
    content = create_article(account_id, validate_article(json_body()))
    db.session.commit()
    event("content_created", account=account_id, content=content.id, images=len(content.images))
    return jsonify(success=True, **article_dict(content)), 201


@bp.get("/images/")
@api_login_required
def images_list():  # noqa: ANN201
    status = request.args.get("status") or None
    if status is not None and status not in IMAGE_STATUSES:
        abort(400, description=f"status must be one of: {', '.join(IMAGE_STATUSES)}.")
    images = list_images(current_account_id(), content_id=int_arg("content_id"), status=status)
    return jsonify(success=True, images=[img.to_dict() for img in images])
