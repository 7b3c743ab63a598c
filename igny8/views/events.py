"""The JSON event stream of a task (for API and CLI clients)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from ..accounts.auth import credential_check, current_account_id, stream_credential
from ..streaming.events import json_formatter, sse_stream
from .api_common import api_login_required
from .api_tasks import task_or_404

bp = Blueprint("events", __name__, url_prefix="/api/v1/tasks")

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event_stream(body) -> Response:  # noqa: ANN001
    """Headers set before the first byte; the generator has its own app context and never
    touches the session, so no request state is needed once streaming starts."""
    return Response(body, mimetype="text/event-stream", headers=STREAM_HEADERS)


@bp.get("/<task_id>/events")
@api_login_required
def task_event_stream(task_id: str) -> Response:
    task = task_or_404(task_id)
    last_event_id = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    return event_stream(sse_stream(current_app._get_current_object(), current_account_id(), task.id,
                                    last_event_id, json_formatter,
                                    credential_check(stream_credential())))
