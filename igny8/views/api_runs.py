"""JSON API: bulk runs (DESIGN.md, "Bulk runs"): create one, read its summary, cancel it, retry its
failed images. Every lookup is scoped to the caller's account (another account's run is a 404)."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify
from flask.typing import ResponseReturnValue
from flask_login import current_user

from ..accounts.auth import bearer_token, current_account_id
from ..models import Run
from ..spend.preview import split_dry_run
from ..tasks.bulk import create_run, parse_bulk_request, preview_run
from ..tasks.runs import cancel_run, get_run, retry_run, run_summary
from .api_common import api_login_required, json_body

bp = Blueprint("api_runs", __name__)


def run_or_404(run_id: str) -> Run:
    run = get_run(current_account_id(), run_id)
    if run is None:
        abort(404, description="No such run.")
    return run


def request_source() -> str:
    """``api`` for a Bearer token, ``web`` for the session cookie (the Images page)."""
    return "api" if bearer_token() else "web"


@bp.post("/api/v1/writer/images/generate_bulk/")
@api_login_required
def generate_bulk() -> ResponseReturnValue:
    """One task per article by the queue rule, grouped in a run; 202 with the tasks and the
    articles skipped (nothing to generate), 409 when nothing at all is to generate."""
    dry, body = split_dry_run(json_body())
    content_ids, all_missing = parse_bulk_request(body)
    if dry:  # what it would queue and cost, and the month's budget; nothing is written
        return jsonify({"success": True, "dry_run": True,
                        **preview_run(current_account_id(), content_ids, all_missing)})
    created = create_run(current_account_id(), current_user.id, request_source(), content_ids, all_missing)
    return jsonify(created.body()), 202


@bp.get("/api/v1/runs/<run_id>/")
@api_login_required
def run_detail(run_id: str) -> ResponseReturnValue:
    return jsonify(run_summary(run_or_404(run_id)))


@bp.post("/api/v1/runs/<run_id>/cancel")
@api_login_required
def run_cancel(run_id: str) -> ResponseReturnValue:
    """Queued tasks end now (their images back to pending); running ones after the image in flight."""
    run = run_or_404(run_id)
    cancel_run(run)
    return jsonify(run_summary(run, with_rows=False))


@bp.post("/api/v1/runs/<run_id>/retry")
@api_login_required
def run_retry(run_id: str) -> ResponseReturnValue:
    """The run's failed images as a new run (202, as generate_bulk); 409 when none failed."""
    created = retry_run(run_or_404(run_id), current_user.id, request_source())
    return jsonify(created.body()), 202
