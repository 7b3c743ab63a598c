"""The account stream (DESIGN.md, "Bulk runs, the account stream and fair scheduling"): the JSON
events of every task of the caller's account, for API clients and the pages (one per tab)."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, current_app, request

from ..accounts.auth import credential_check, current_account_id, stream_credential
from ..progress.events import TaskEvent
from ..streaming.account import account_events, account_opening
from ..streaming.admission import opens_stream
from ..streaming.sse import json_formatter, sse_body, sse_response
from .api_common import api_login_required

bp = Blueprint("account_events", __name__, url_prefix="/api/v1")


@bp.get("/events")
@opens_stream
@api_login_required
def account_event_stream() -> Response:
    """``snapshot`` of the account's unfinished tasks, then ``task`` and ``image`` events of all
    its tasks (each with ``task_id``), ``Last-Event-ID`` resume, a keepalive comment every 15 s."""
    account_id = current_account_id()
    opening = account_opening(account_id, request.headers.get("Last-Event-ID")
                              or request.args.get("last_event_id"))
    still_allowed = credential_check(stream_credential())

    def events(recheck: float) -> Iterator[TaskEvent]:
        return account_events(account_id, opening, still_allowed=still_allowed, recheck=recheck)

    return sse_response(sse_body(current_app._get_current_object(), events, json_formatter))
