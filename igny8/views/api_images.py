"""JSON API: one image (read, edit, delete), regenerating it, and its versions."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from flask.views import MethodView

from ..accounts.auth import current_account_id, task_origin
from ..content.images import delete_image, get_image, get_version, image_detail, update_image, validate_image_fields
from ..content.versions import activate_version, delete_version
from ..tasks.regenerate import regenerate_image
from .api_common import api_login_required, json_body

bp = Blueprint("api_images", __name__, url_prefix="/api/v1/writer/images")


class ImageAPI(MethodView):
    """``/images/<id>/``: one rule for its three methods (an id out of range is a 404 whatever the
    method, as ``api_content.ArticleAPI``)."""

    decorators = [api_login_required]
    init_every_request = False

    def get(self, image_id: int) -> ResponseReturnValue:
        """The image with its effective ``alt_text``, ``caption`` and ``versions`` (each with ``active``)."""
        return jsonify(success=True, **image_detail(get_image(current_account_id(), image_id)))

    def patch(self, image_id: int) -> ResponseReturnValue:
        """Change ``prompt``, ``alt_text``, ``caption`` (a new prompt keeps every version)."""
        image = get_image(current_account_id(), image_id)
        update_image(image, validate_image_fields(json_body()))
        return jsonify(success=True, **image_detail(image))

    def delete(self, image_id: int) -> ResponseReturnValue:
        """An in-article image and the files of all its versions; 409 for the featured image or while
        a task holds it."""
        delete_image(get_image(current_account_id(), image_id))
        return jsonify(success=True, deleted=image_id)


bp.add_url_rule("/<id:image_id>/", view_func=ImageAPI.as_view("image"))


@bp.post("/<id:image_id>/regenerate")
@api_login_required
def image_regenerate(image_id: int) -> ResponseReturnValue:
    """A one-image task (optional new ``prompt``): 202 as generate_images, or the task that holds
    the image already (``existing``)."""
    account_id = current_account_id()
    queued = regenerate_image(account_id, get_image(account_id, image_id), _optional_body(), **task_origin())
    return jsonify(success=True, task_id=queued.task.id, existing=queued.existing,
                   queue=[item.to_dict() for item in queued.items], note=queued.note), 202


@bp.post("/<id:image_id>/versions/<id:version_id>/activate")
@api_login_required
def version_activate(image_id: int, version_id: int) -> ResponseReturnValue:
    image = get_image(current_account_id(), image_id)
    activate_version(image, get_version(image, version_id))
    return jsonify(success=True, **image_detail(image))


@bp.delete("/<id:image_id>/versions/<id:version_id>")
@api_login_required
def version_delete(image_id: int, version_id: int) -> ResponseReturnValue:
    """A version that is not the active one, and its files; 409 for the active one."""
    image = get_image(current_account_id(), image_id)
    delete_version(image, get_version(image, version_id))
    return jsonify(success=True, **image_detail(image))


def _optional_body() -> Any:
    """The JSON body, or None when the request has none (regenerating needs no body)."""
    return json_body() if request.content_length or request.is_json else None
