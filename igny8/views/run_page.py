"""Bulk runs in the browser: choosing articles on the Images page, the confirmation dialog, and the
run page (the whole run's bar, one row per article, Cancel run, Retry failed). The run page polls
its summary fragment every 2 s while the run is going."""

from __future__ import annotations

from flask import Blueprint, abort, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy import select

from ..accounts.auth import current_account_id
from ..extensions import db
from ..models import IMAGE_STATUSES, MAX_DB_ID, Content, Image, Run
from ..tasks.bulk import MAX_CONTENT_IDS, CreatedRun, create_run, preview_run
from ..tasks.requests import QueueError
from ..tasks.runs import cancel_run, get_run, retry_run, run_summary
from .htmx import is_fragment_request, render_page

bp = Blueprint("runs", __name__, url_prefix="/writer/runs")
ROWS_PER_PAGE = 50


def _matching(account_id: int, search: str, status: str) -> list[int]:
    """Ids of the articles the Images page's filter shows (all its pages), newest first."""
    query = select(Content.id).filter_by(account_id=account_id)
    if search:
        query = query.where(Content.title.icontains(search, autoescape=True))
    if status in IMAGE_STATUSES:
        query = query.where(select(Image.id).where(Image.content_id == Content.id, Image.status == status).exists())
    return list(db.session.scalars(query.order_by(Content.id.desc()).limit(MAX_CONTENT_IDS)))


def _selection() -> tuple[list[int] | None, bool, dict[str, str]]:
    """(content_ids, all_missing, the form fields that say so again) of the posted choice."""
    scope = request.form.get("scope", "selected")
    if scope == "missing":
        return None, True, {"scope": "missing"}
    if scope == "filter":
        search, status = request.form.get("q", "").strip()[:200], request.form.get("status", "")
        ids = _matching(current_account_id(), search, status)
        fields = {"scope": "filter", "q": search, "status": status}
    else:
        values = request.form.getlist("content_ids")
        ids = list(dict.fromkeys(int(v) for v in values if v.isascii() and v.isdigit() and 0 < int(v) <= MAX_DB_ID))
        fields = {"scope": "selected"}
    if not ids:
        raise QueueError(400, "Select at least one article first.")
    return ids, False, fields


@bp.post("/confirm")
@login_required
def confirm() -> ResponseReturnValue:
    """The confirmation dialog: how many articles and images the run would generate."""
    try:
        content_ids, all_missing, fields = _selection()
        figures = preview_run(current_account_id(), content_ids, all_missing)
    except QueueError as exc:
        return render_template("writer/_bulk_confirm.html", error=exc.message)
    ids = content_ids if fields["scope"] == "selected" else []
    return render_template("writer/_bulk_confirm.html", error=None, figures=figures, fields=fields, ids=ids)


def _to_run(created: CreatedRun) -> ResponseReturnValue:
    target = url_for("runs.run_page", run_id=created.run.id)
    if is_fragment_request():
        response = make_response("", 204)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)


@bp.post("/")
@login_required
def create() -> ResponseReturnValue:
    try:
        content_ids, all_missing, _fields = _selection()
        created = create_run(current_account_id(), current_user.id, "web", content_ids, all_missing)
    except QueueError as exc:
        return render_template("writer/_bulk_confirm.html", error=exc.message), 200
    return _to_run(created)


def _run_or_404(run_id: str) -> Run:
    run = get_run(current_account_id(), run_id)
    if run is None:
        abort(404, description="No such run.")
    return run


def _context(run: Run) -> dict:
    summary = run_summary(run)
    pages = max(-(-len(summary["tasks"]) // ROWS_PER_PAGE), 1)
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), pages)
    rows = summary["tasks"][(page - 1) * ROWS_PER_PAGE:page * ROWS_PER_PAGE]
    return {"run": run, "summary": summary, "rows": rows, "page": page, "pages": pages, "error": None}


@bp.get("/<run_id>")
@login_required
def run_page(run_id: str) -> ResponseReturnValue:
    return render_page("writer/run.html", "writer/_run_summary.html", **_context(_run_or_404(run_id)))


@bp.get("/<run_id>/summary")
@login_required
def summary_fragment(run_id: str) -> ResponseReturnValue:
    return render_template("writer/_run_summary.html", **_context(_run_or_404(run_id)))


@bp.post("/<run_id>/cancel")
@login_required
def cancel(run_id: str) -> ResponseReturnValue:
    run = _run_or_404(run_id)
    error = None
    try:
        cancel_run(run)
    except QueueError as exc:
        error = exc.message
    return render_template("writer/_run_summary.html", **{**_context(run), "error": error})


@bp.post("/<run_id>/retry")
@login_required
def retry(run_id: str) -> ResponseReturnValue:
    run = _run_or_404(run_id)
    try:
        created = retry_run(run, current_user.id, "web")
    except QueueError as exc:
        return render_template("writer/_run_summary.html", **{**_context(run), "error": exc.message})
    return _to_run(created)
