"""JSON API: queue a batch, read its progress, cancel it."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify

from ..accounts.auth import current_account_id
from ..tasks.reconcile import reconcile
from ..tasks.rule import QueueError
from ..tasks.service import cancel_batch, queue_batch
from ..tasks.state import get_task, task_progress_body
from .api_common import api_login_required, json_body

bp = Blueprint("api_tasks", __name__, url_prefix="/api/v1")


@bp.errorhandler(QueueError)
def _queue_error(exc: QueueError):  # noqa: ANN202
    return jsonify(success=False, error=exc.message), exc.status


@bp.post("/writer/images/generate_images/")
@api_login_required
def generate_images():  # noqa: ANN201
    batch = queue_batch(current_account_id(), json_body())
    return jsonify(success=True, task_id=batch.task.id, existing=batch.existing, queue=batch.items,
                   note=batch.note), 202


def task_or_404(task_id: str):  # noqa: ANN201
    """The caller's task (checked for a dead worker on the way), or 404."""
    task = get_task(current_account_id(), task_id)
    if task is None:
        abort(404, description="No such task.")
    if task.running:
        reconcile(task)
    return task


@bp.get("/system/settings/task_progress/<task_id>/")
@api_login_required
def task_progress(task_id: str):  # noqa: ANN201
    return jsonify(task_progress_body(task_or_404(task_id)))


@bp.post("/tasks/<task_id>/cancel")
@api_login_required
def cancel(task_id: str):  # noqa: ANN201
    task = task_or_404(task_id)
    cancel_batch(task)
    return jsonify(success=True, task_id=task.id, state=task.state, cancelled=True), 202
