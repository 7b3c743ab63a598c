"""The generation modal: its live view and its HTML-fragment event stream (htmx SSE)."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask.wrappers import Response
from flask_login import login_required

from ..accounts.auth import credential_check, current_account_id, stream_credential
from ..integrations.settings import image_generation_config
from ..progress.events import EventName, TaskEvent
from ..progress.schema import ItemStatus, QueueItem, TaskSummary
from ..streaming.admission import opens_stream
from ..streaming.events import stream_opening
from ..streaming.sse import encode, sse_response, sse_stream
from ..tasks.readout import result_body, summary_of_progress_body
from ..tasks.reconcile import checked_view
from ..tasks.rule import plan_queue
from .lookup import task_or_404

bp = Blueprint("modal", __name__, url_prefix="/writer/tasks")
NOT_FOUND = "No such batch."


def _footer(summary: TaskSummary, results: list[dict] | None = None, duration: float | None = None) -> str:
    failed_ids = [r["image_id"] for r in results or [] if r["status"] == ItemStatus.FAILED]
    return render_template("writer/_modal_footer.html", summary=summary, task_id=summary.task_id,
                           failed_ids=failed_ids, duration=duration)


def _item(item: QueueItem) -> str:
    return render_template("writer/_queue_item.html", item=item)


def _bar(item: QueueItem, event_id: str | None = None) -> str:
    return encode(f"image-{item.image_id}", _item(item), event_id)


def html_formatter(event: TaskEvent) -> str:
    """Turn one task event into the fragments the modal swaps in (by sse-swap name)."""
    if event.name == EventName.IMAGE:
        return _bar(QueueItem.from_dict(event.data), event.id)
    if event.name == EventName.TASK:
        summary = TaskSummary.from_dict(event.data)
        if summary.finished:
            return ""  # the ``done`` event that follows renders the final footer
        return encode("summary", _footer(summary), event.id)
    if event.name == EventName.DONE:
        summary = TaskSummary.from_dict(event.data)
        return (encode("summary", _footer(summary, event.data.get("results"), event.data.get("duration_seconds")))
                + encode("done", "done", event.id))
    # snapshot: every bar, then the footer
    parts = [_bar(QueueItem.from_dict(item)) for item in event.data["meta"]["queue"]]
    summary = summary_of_progress_body(event.data)
    if summary.finished:
        return "".join(parts)  # ``done`` follows at once
    parts.append(encode("summary", _footer(summary), event.id))
    return "".join(parts)


@bp.get("/<task_id>/modal")
@login_required
def task_modal(task_id: str) -> str:
    """The modal showing the true state of a task (used after the click, and to reopen it)."""
    task = task_or_404(task_id, NOT_FOUND)
    summary, items, _ = checked_view(task)
    result = result_body(summary, items)
    failed_ids = [r["image_id"] for r in result["results"] if r["status"] == ItemStatus.FAILED]
    note = None
    if task.content is not None:  # what the article's cap leaves out, as the click's answer said
        note = plan_queue(task.content.images, image_generation_config(task.account_id)["max_in_article_images"]).note
    return render_template("writer/_modal.html", items=items, summary=summary, task_id=task.id,
                           title=summary.content_title or "", content_id=task.content_id,
                           failed_ids=failed_ids, duration=result["duration_seconds"], note=note)


@bp.get("/<task_id>/stream")
@opens_stream
@login_required
def fragment_stream(task_id: str) -> Response:
    task = task_or_404(task_id, NOT_FOUND)
    opening = stream_opening(task, request.headers.get("Last-Event-ID"))
    return sse_response(sse_stream(current_app._get_current_object(), current_account_id(), task.id, opening,
                                   html_formatter, credential_check(stream_credential())))
