"""The Batches page: the account's generation tasks, newest first (what the operators' /rq shows
of every account, for the account's own users), each reopening its live modal; rows of running
tasks follow the account stream (static/js/live.js)."""

from __future__ import annotations

from flask import Blueprint, current_app, request
from flask.typing import ResponseReturnValue
from flask_login import login_required
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..accounts.auth import current_account_id
from ..extensions import db
from ..models import GenerationTask
from ..progress.schema import TaskSummary
from ..tasks.readout import summary_from_task
from .htmx import render_page

bp = Blueprint("batches", __name__)
SOURCE_LABELS = {"web": "web page", "api": "API", "cli": "command line"}


def page_of_tasks(account_id: int, page: int, per_page: int) -> tuple[list[GenerationTask], int, int]:
    """(the tasks of page ``page``, the number of tasks, the page shown: clamped to 1..last)."""
    mine = GenerationTask.account_id == account_id
    total = db.session.scalar(select(func.count()).select_from(GenerationTask).where(mine)) or 0
    pages = max((total + per_page - 1) // per_page, 1)
    page = min(max(page, 1), pages)
    tasks = db.session.scalars(
        select(GenerationTask).where(mine)
        .options(selectinload(GenerationTask.content), selectinload(GenerationTask.user))
        .order_by(GenerationTask.created_at.desc(), GenerationTask.id.desc())
        .offset((page - 1) * per_page).limit(per_page)).all()
    return list(tasks), total, page


def batch_row(task: GenerationTask) -> dict:
    """What one row shows (the outcome in DESIGN.md's words once the task has ended)."""
    summary: TaskSummary = summary_from_task(task)
    if task.user is not None:
        who = task.user.email
    else:
        who = "command line" if task.source == "cli" else "—"
    return {"task": task, "summary": summary, "outcome": summary.outcome, "who": who,
            "source": SOURCE_LABELS.get(task.source or "", "—")}


@bp.get("/writer/batches")
@login_required
def batches() -> ResponseReturnValue:
    per_page = current_app.config["BATCHES_PER_PAGE"]
    page = request.args.get("page", 1, type=int) or 1  # not a number: the first page
    tasks, total, page = page_of_tasks(current_account_id(), page, per_page)
    pages = max((total + per_page - 1) // per_page, 1)
    return render_page("writer/batches.html", "writer/_batches_table.html", rows=[batch_row(t) for t in tasks],
                       total=total, page=page, pages=pages)
