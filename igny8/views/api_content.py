"""JSON API: one article (read, edit, delete) and adding an in-article image to it."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from flask.views import MethodView

from ..accounts.auth import current_account_id
from ..content.articles import article_dict, delete_article, get_content, validate_article_patch
from ..content.images import add_image, image_detail
from ..extensions import db
from ..logs import event
from .api_common import api_login_required, json_body

bp = Blueprint("api_content", __name__, url_prefix="/api/v1/writer/content")


def _article(content_id: int) -> dict:
    content = get_content(current_account_id(), content_id)
    return {**article_dict(content), "html": content.html}


class ArticleAPI(MethodView):
    """``/content/<id>/``: one rule for its three methods, so an id out of range is a 404 whatever
    the method (separate rules per method make Werkzeug answer 405 when the converter refuses)."""

    decorators = [api_login_required]
    init_every_request = False

    def get(self, content_id: int) -> ResponseReturnValue:
        return jsonify(success=True, **_article(content_id))

    def patch(self, content_id: int) -> ResponseReturnValue:
        """Change ``title``, ``html``, ``status``; 400 per field and nothing written on a bad value."""
        content = get_content(current_account_id(), content_id)
        clean = validate_article_patch(json_body())
        for field, value in clean.items():
            setattr(content, field, value)
        db.session.commit()
        event("content_updated", account=content.account_id, content=content.id, fields=",".join(sorted(clean)))
        return jsonify(success=True, **_article(content_id))

    def delete(self, content_id: int) -> ResponseReturnValue:
        """The article, its images, their versions and files; 409 while a task holds any of its images."""
        delete_article(get_content(current_account_id(), content_id))
        return jsonify(success=True, deleted=content_id)


bp.add_url_rule("/<id:content_id>/", view_func=ArticleAPI.as_view("article"))


@bp.post("/<id:content_id>/images/")
@api_login_required
def content_add_image(content_id: int) -> ResponseReturnValue:
    """A new in-article image (``prompt``, optional ``position``: default after the last)."""
    image = add_image(get_content(current_account_id(), content_id), json_body())
    return jsonify(success=True, **image_detail(image)), 201
