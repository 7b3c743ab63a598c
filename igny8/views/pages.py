"""Writer pages: the Images list, article create/edit, and media files."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_from_directory, url_for
from flask.typing import ResponseReturnValue
from flask.wrappers import Response
from flask_login import login_required

from ..accounts.auth import current_account_id
from ..content.articles import (
    ContentError,
    account_totals,
    create_article,
    get_content,
    page_of_articles,
    recent_tasks,
    running_tasks,
    update_article,
    validate_article,
)
from ..content.articles import delete_article as remove_article
from ..content.errors import ConflictError
from ..extensions import db
from ..integrations.settings import image_generation_config
from ..media.stores import LocalMediaStore, StorageError, check_key, get_store
from ..models import IMAGE_STATUSES
from .htmx import render_page

bp = Blueprint("pages", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    return redirect(url_for("pages.images"))


@bp.get("/writer/images")
@login_required
def images() -> ResponseReturnValue:
    account_id = current_account_id()
    search = request.args.get("q", "").strip()[:200]
    status = request.args.get("status", "")
    page = request.args.get("page", 1, type=int) or 1  # not a number: the first page
    per_page = current_app.config["IMAGES_PER_PAGE"]
    articles, total, page = page_of_articles(account_id, search=search, status=status, page=page,
                                             per_page=per_page)
    pages = max((total + per_page - 1) // per_page, 1)
    return render_page(
        "writer/images.html", "writer/_images_refresh.html", running=running_tasks(account_id, articles),
        articles=articles, total=total, page=page, pages=pages, search=search, status=status,
        statuses=IMAGE_STATUSES, settings=image_generation_config(account_id),
        totals=account_totals(account_id), tasks=recent_tasks(account_id),
    )


def _form_article() -> dict:
    prompts = [p for p in request.form.getlist("in_article_prompts")]
    while prompts and not prompts[-1].strip():
        prompts.pop()
    return {
        "title": request.form.get("title", ""),
        "html": request.form.get("html", ""),
        "featured_prompt": request.form.get("featured_prompt", ""),
        "in_article_prompts": prompts,
    }


@bp.route("/writer/content/new", methods=["GET", "POST"])
@login_required
def new_article() -> ResponseReturnValue:
    account_id = current_account_id()
    form, errors = {"in_article_prompts": ["", ""]}, {}
    if request.method == "POST":
        form = _form_article()
        try:
            content = create_article(account_id, validate_article(form))
        except ContentError as exc:
            errors = exc.errors
        else:
            db.session.commit()
            flash(f"Article “{content.title}” created.", "success")
            return redirect(url_for("pages.images"))
    return render_template("writer/article_form.html", form=form, errors=errors, content=None), (
        400 if errors else 200)


@bp.route("/writer/content/<id:content_id>/edit", methods=["GET", "POST"])
@login_required
def edit_article(content_id: int) -> ResponseReturnValue:
    content = get_content(current_account_id(), content_id)
    errors: dict[str, str] = {}
    if request.method == "POST":
        form = _form_article()
        try:
            update_article(content, validate_article(form))
        except ContentError as exc:
            errors = exc.errors
        else:
            db.session.commit()
            flash(f"Article “{content.title}” saved.", "success")
            return redirect(url_for("pages.images"))
    else:
        by_key = {(img.type, img.position): img.prompt for img in content.images}
        last = max([img.position for img in content.images if img.type == "in_article"] or [0])
        form = {
            "title": content.title, "html": content.html,
            "featured_prompt": by_key.get(("featured", 0), ""),
            "in_article_prompts": [by_key.get(("in_article", i), "") for i in range(1, last + 2)],
        }
    return render_template("writer/article_form.html", form=form, errors=errors, content=content), (
        400 if errors else 200)


@bp.post("/writer/content/<id:content_id>/delete")
@login_required
def delete_article(content_id: int) -> ResponseReturnValue:
    content = get_content(current_account_id(), content_id)
    title = content.title
    try:
        remove_article(content)  # its images, their versions and files; refused while a task holds one
    except ConflictError as exc:
        flash(exc.message, "error")
        return redirect(url_for("pages.images"))
    flash(f"Article “{title}” deleted.", "success")
    return redirect(url_for("pages.images"))


@bp.get("/media/<path:key>")
@login_required
def media(key: str) -> ResponseReturnValue:
    """Files are stored under ``a<account_id>/``; another account's file answers 404. The local
    folder is sent as files; an S3 object is read through the store (the bucket stays private).

    The key is validated *before* the account test: the URL arrives percent-decoded, so
    ``a2/%2e%2e/a1/…`` is the key ``a2/../a1/…``, which would pass a prefix test on the raw text
    and then be collapsed into account 1's folder. Any dot segment, empty part or backslash is 404."""
    try:
        check_key(key)
    except ValueError:
        abort(404)
    if not key.startswith(f"a{current_account_id()}/"):
        abort(404)
    store = get_store(current_app.config)
    if isinstance(store, LocalMediaStore):
        return _private(send_from_directory(Path(current_app.config["MEDIA_ROOT"]), key, max_age=86400))
    try:
        data = store.read(key)
    except (FileNotFoundError, ValueError):
        abort(404)
    except StorageError as exc:
        current_app.logger.warning("media_unavailable key=%s error=%s", key, exc)
        abort(503, description=str(exc))
    response = current_app.response_class(data, mimetype=mimetypes.guess_type(key)[0] or "application/octet-stream")
    response.cache_control.max_age = 86400
    response.add_etag()
    return _private(response.make_conditional(request))


def _private(response: Response) -> Response:
    """Images are behind the login: browsers may keep them, shared caches must not."""
    response.cache_control.public = False
    response.cache_control.private = True
    return response
