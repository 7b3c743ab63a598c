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
from ..content.editing import CONFIRM_FIELD, Row
from ..content.editing import edit_article as apply_rows
from ..content.errors import ConflictError
from ..content.versions import remove_files
from ..extensions import db
from ..integrations.settings import image_generation_config
from ..media.stores import LocalMediaStore, StorageError, check_key, get_store
from ..models import IMAGE_STATUSES, MAX_DB_ID, Content
from ..ops.proxy import accel_redirect
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
    """The posted form. A form from the article page carries a row id per in-article prompt
    (``in_article_ids``, empty for a new row): rows are then renumbered 1..N. A form without
    them (an older page, a script) keeps the meaning of position = line number."""
    prompts = request.form.getlist("in_article_prompts")
    form = {"title": request.form.get("title", ""), "html": request.form.get("html", ""),
            "featured_prompt": request.form.get("featured_prompt", ""), "in_article_prompts": prompts}
    if "in_article_ids" not in request.form:
        while prompts and not prompts[-1].strip():
            prompts.pop()
        return form
    ids = request.form.getlist("in_article_ids")
    form["rows"] = [Row(_row_id(ids[i] if i < len(ids) else ""), prompt) for i, prompt in enumerate(prompts)]
    form["confirm_removal"] = request.form.get(CONFIRM_FIELD) == "yes"
    return form


def _row_id(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() and 0 < int(value) <= MAX_DB_ID else None


def _form_rows(form: dict, content: Content | None) -> list[dict]:
    """The rows the form shows: each with its image (state, thumbnail) when it has one."""
    images = {img.id: img for img in content.images} if content else {}
    if "rows" in form:
        return [{"id": row.image_id, "prompt": row.prompt, "image": images.get(row.image_id)} for row in form["rows"]]
    return [{"id": None, "prompt": prompt, "image": None} for prompt in form["in_article_prompts"]]


def _render_form(form: dict, errors: dict[str, str], content: Content | None) -> ResponseReturnValue:
    featured = next((img for img in content.images if img.type == "featured"), None) if content else None
    return render_template("writer/article_form.html", form=form, errors=errors, content=content,
                           rows=_form_rows(form, content), featured=featured), 400 if errors else 200


def _clean(form: dict) -> dict:
    """Validated fields; row prompts are validated as the list the API takes."""
    data = {k: form[k] for k in ("title", "html", "featured_prompt")}
    data["in_article_prompts"] = [row.prompt for row in form["rows"]] if "rows" in form else form["in_article_prompts"]
    return validate_article(data)


@bp.route("/writer/content/new", methods=["GET", "POST"])
@login_required
def new_article() -> ResponseReturnValue:
    account_id = current_account_id()
    form, errors = {"in_article_prompts": ["", ""]}, {}
    if request.method == "POST":
        form = _form_article()
        try:
            clean = _clean(form)
            if "rows" in form:  # new rows: the non-empty prompts, numbered 1..N
                clean["in_article_prompts"] = [p for p in clean["in_article_prompts"] if p]
            content = create_article(account_id, clean)
        except ContentError as exc:
            errors = exc.errors
        else:
            db.session.commit()
            flash(f"Article “{content.title}” created.", "success")
            return redirect(url_for("article.article", content_id=content.id))
    return _render_form(form, errors, None)


@bp.route("/writer/content/<id:content_id>/edit", methods=["GET", "POST"])
@login_required
def edit_article(content_id: int) -> ResponseReturnValue:
    content = get_content(current_account_id(), content_id)
    errors: dict[str, str] = {}
    if request.method == "GET":
        return _render_form(_stored_form(content), errors, content)
    form = _form_article()
    try:
        removed_keys = _apply(content, form)
    except ContentError as exc:
        db.session.rollback()
        return _render_form(form, exc.errors, content)
    db.session.commit()
    remove_files(removed_keys, account_id=content.account_id)
    flash(f"Article “{content.title}” saved.", "success")
    return redirect(url_for("article.article", content_id=content.id))


def _apply(content: Content, form: dict) -> list[str]:
    clean = _clean(form)
    if "rows" not in form:
        update_article(content, clean)
        return []
    return apply_rows(content, clean, form["rows"], form["confirm_removal"])


def _stored_form(content: Content) -> dict:
    featured = next((img.prompt for img in content.images if img.type == "featured"), "")
    rows = [Row(img.id, img.prompt) for img in sorted(content.images, key=lambda i: i.position)
            if img.type == "in_article"]
    return {"title": content.title, "html": content.html, "featured_prompt": featured, "rows": rows,
            "confirm_removal": False}


@bp.post("/writer/content/<id:content_id>/delete")
@login_required
def delete_article(content_id: int) -> ResponseReturnValue:
    """Delete the article, its images, their versions and files (``content.articles.delete_article``)."""
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
        handed_over = accel_redirect(key)
        if handed_over is not None:
            return _private(handed_over)
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
