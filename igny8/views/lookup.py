"""Account-scoped lookups for views: the caller's row or a 404, never another account's."""

from __future__ import annotations

from flask import abort

from ..accounts.auth import current_account_id
from ..models import GenerationTask
from ..tasks.readout import get_task


def task_or_404(task_id: str, description: str = "No such task.") -> GenerationTask:
    """The caller's task; 404 for an unknown task and for another account's alike."""
    task = get_task(current_account_id(), task_id)
    if task is None:
        abort(404, description=description)
    return task
