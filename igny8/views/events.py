"""The JSON event stream of a task (for API and CLI clients)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from ..accounts.auth import credential_check, current_account_id, stream_credential
from ..streaming.admission import opens_stream
from ..streaming.events import stream_opening
from ..streaming.sse import json_formatter, sse_response, sse_stream
from .api_common import api_login_required
from .lookup import task_or_404

bp = Blueprint("events", __name__, url_prefix="/api/v1/tasks")


@bp.get("/<task_id>/events")
@opens_stream
@api_login_required
def task_event_stream(task_id: str) -> Response:
    task = task_or_404(task_id)
    opening = stream_opening(task, request.headers.get("Last-Event-ID") or request.args.get("last_event_id"))
    return sse_response(sse_stream(current_app._get_current_object(), current_account_id(), task.id, opening,
                                   json_formatter, credential_check(stream_credential())))
