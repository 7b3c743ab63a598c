"""JSON API of a task: its progress, and cancelling it."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from ..tasks.readout import task_progress_body
from ..tasks.reconcile import check_task
from ..tasks.service import cancel_task
from .api_common import api_login_required
from .lookup import task_or_404

bp = Blueprint("api_tasks", __name__, url_prefix="/api/v1")


@bp.get("/system/settings/task_progress/<task_id>/")
@api_login_required
def task_progress(task_id: str) -> ResponseReturnValue:
    task = task_or_404(task_id)
    check_task(task)
    return jsonify(task_progress_body(task))


@bp.post("/tasks/<task_id>/cancel")
@api_login_required
def cancel(task_id: str) -> ResponseReturnValue:
    task = task_or_404(task_id)
    check_task(task)
    cancel_task(task)
    return jsonify(success=True, task_id=task.id, state=task.state, cancelled=True), 202
