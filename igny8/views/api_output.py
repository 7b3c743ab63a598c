"""JSON API: the finished article — its HTML, and a ZIP of a static page with its image files."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.utils import secure_filename

from ..accounts.auth import current_account_id
from ..content.articles import get_content
from ..content.export import ExportError, export_zip
from ..content.render import article_html, public_url, stored_url
from ..logs import event
from ..media.stores import get_store
from .api_common import api_login_required

bp = Blueprint("api_output", __name__, url_prefix="/api/v1/writer/content")


@bp.get("/<id:content_id>/html")
@api_login_required
def content_html(content_id: int) -> ResponseReturnValue:
    """The article body with its images in place; image URLs under ``PUBLIC_MEDIA_URL`` if set."""
    content = get_content(current_account_id(), content_id)
    base = current_app.config.get("PUBLIC_MEDIA_URL")
    return jsonify(success=True, html=article_html(content, public_url(base) if base else stored_url))


@bp.get("/<id:content_id>/export.zip")
@api_login_required
def content_export(content_id: int) -> ResponseReturnValue:
    """``article.html`` and ``images/…``; 503 when an image file cannot be read (never a partial ZIP)."""
    account_id = current_account_id()
    content = get_content(account_id, content_id)
    try:
        data = export_zip(content, get_store(current_app.config))
    except ExportError as exc:
        event("export_failed", level=30, account=account_id, content=content_id, error=str(exc))
        abort(503, description=str(exc))
    name = secure_filename(content.title.lower()) or f"article-{content.id}"
    response = current_app.response_class(data, mimetype="application/zip")
    response.headers.set("Content-Disposition", "attachment", filename=f"{name}.zip")
    response.headers["Cache-Control"] = "private, no-store"
    return response
