"""The article page: the finished article as a reader sees it, and each image's state, alt text,
caption, versions and Regenerate. Its htmx actions answer the page's article area again
(``writer/_article_area.html``), so the article and the image cards always agree."""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required

from ..accounts.auth import current_account_id
from ..content.alt_text import alt_text_of
from ..content.articles import ContentError, get_content
from ..content.errors import ConflictError
from ..content.images import MAX_ALT_TEXT, MAX_CAPTION, get_image, get_version, update_image, validate_image_fields
from ..content.render import article_html
from ..content.versions import activate_version, delete_version
from ..models import Content, Image
from ..progress.schema import ItemStatus, QueueItem
from .htmx import render_page

bp = Blueprint("article", __name__)
# POST /api/v1/writer/images/<id>/regenerate (DESIGN.md): the modal posts there, as Generate does.
REGENERATE_ENDPOINT = "api_images.image_regenerate"
TEXT_FIELDS = ("alt_text", "caption")


def regenerate_preview(image: Image, content: Content) -> QueueItem:
    """The one bar the modal shows the moment Regenerate is clicked."""
    item = QueueItem.from_image(image, 1, content.title)
    return replace(item, status=ItemStatus.PENDING, progress=0, image_url=None, error=None)


def regenerate_url(image: Image) -> str:
    return url_for(REGENERATE_ENDPOINT, image_id=image.id)


def area_context(content: Content, **extra: object) -> dict:
    """What ``writer/_article_area.html`` shows: the finished article, the images, the cost."""
    images = sorted(content.images, key=lambda img: (img.type != "featured", img.position))
    return {"content": content, "images": images, "article_body": article_html(content),
            "cost": sum(img.cost or 0.0 for img in content.images), "alt_text_of": alt_text_of,
            "regenerate_preview": regenerate_preview, "regenerate_url": regenerate_url,
            "max_alt_text": MAX_ALT_TEXT, "max_caption": MAX_CAPTION, **extra}


def render_area(content: Content, status: int = 200, **extra: object) -> ResponseReturnValue:
    return render_template("writer/_article_area.html", **area_context(content, **extra)), status


@bp.get("/writer/content/<id:content_id>")
@login_required
def article(content_id: int) -> ResponseReturnValue:
    """The page; an htmx request gets the article area alone (the refresh after a batch)."""
    content = get_content(current_account_id(), content_id)
    return render_page("writer/article.html", "writer/_article_area.html", **area_context(content))


@bp.post("/writer/images/<id:image_id>/text")
@login_required
def image_text(image_id: int) -> ResponseReturnValue:
    """Save the alt text and caption typed inline; 400 with the field's message, nothing saved."""
    image = get_image(current_account_id(), image_id)
    try:
        update_image(image, validate_image_fields({f: request.form.get(f, "") for f in TEXT_FIELDS},
                                                  allowed=TEXT_FIELDS))
    except ContentError as exc:
        return render_area(image.content, 400, errors={image.id: exc.errors})
    return render_area(image.content, saved=image.id)


@bp.post("/writer/images/<id:image_id>/versions/<id:version_id>/activate")
@login_required
def version_activate(image_id: int, version_id: int) -> ResponseReturnValue:
    """Show another version (``content/versions.activate_version`` commits)."""
    image = get_image(current_account_id(), image_id)
    activate_version(image, get_version(image, version_id))
    return render_area(image.content)


@bp.post("/writer/images/<id:image_id>/versions/<id:version_id>/delete")
@login_required
def version_delete(image_id: int, version_id: int) -> ResponseReturnValue:
    """Delete a version that is not the active one, then its files (``delete_version`` commits);
    the active one answers 409 with the area unchanged."""
    image = get_image(current_account_id(), image_id)
    try:
        delete_version(image, get_version(image, version_id))
    except ConflictError:
        return render_area(image.content, 409)
    return render_area(image.content)
