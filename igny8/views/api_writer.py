"""JSON API: articles, their images, and generating them."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, request
from flask.typing import ResponseReturnValue

from ..accounts.auth import current_account_id, task_origin
from ..content.articles import article_dict, create_article, list_content, list_images, validate_article
from ..extensions import db
from ..logs import event
from ..models import IMAGE_STATUSES
from ..spend.preview import dry_run, split_dry_run
from ..tasks.service import queue_task
from .api_common import api_login_required, int_arg, json_body

bp = Blueprint("api_writer", __name__, url_prefix="/api/v1/writer")


@bp.get("/content/")
@api_login_required
def content_list() -> ResponseReturnValue:
    return jsonify(success=True, content=[article_dict(c) for c in list_content(current_account_id())])


@bp.post("/content/")
@api_login_required
def content_create() -> ResponseReturnValue:
    account_id = current_account_id()
    content = create_article(account_id, validate_article(json_body()))
    db.session.commit()
    event("content_created", account=account_id, content=content.id, images=len(content.images))
    return jsonify(success=True, **article_dict(content)), 201


@bp.get("/images/")
@api_login_required
def images_list() -> ResponseReturnValue:
    status = request.args.get("status") or None
    if status is not None and status not in IMAGE_STATUSES:
        abort(400, description=f"status must be one of: {', '.join(IMAGE_STATUSES)}.")
    images = list_images(current_account_id(), content_id=int_arg("content_id"), status=status)
    return jsonify(success=True, images=[img.to_dict() for img in images])


@bp.post("/images/generate_images/")
@api_login_required
def generate_images() -> ResponseReturnValue:
    """Queue a task by the queue rule (or for explicit ids); 202 with its queue, or the running
    task that already holds the images (``existing``). ``dry_run: true``: 200 with the queue, its
    ``estimated_cost`` and the month's ``budget``, nothing queued. 402 over budget."""
    preview, body = split_dry_run(json_body())
    if preview:
        return jsonify(dry_run(current_account_id(), body))
    queued = queue_task(current_account_id(), body, **task_origin())
    return jsonify(success=True, task_id=queued.task.id, existing=queued.existing,
                   queue=[item.to_dict() for item in queued.items], note=queued.note), 202
