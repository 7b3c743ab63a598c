"""The generation modal: its live view and its HTML-fragment event stream (htmx SSE)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, render_template, request
from flask.wrappers import Response
from flask_login import login_required

from ..accounts.auth import credential_check, current_account_id, stream_credential
from ..integrations.settings import image_generation_config
from ..streaming.events import sse, sse_stream
from ..tasks.reconcile import reconcile
from ..tasks.rule import plan_queue
from ..tasks.state import get_task, task_view
from .events import event_stream

bp = Blueprint("modal", __name__, url_prefix="/writer/tasks")


def _summary_from(event: str, payload: dict[str, Any]) -> dict[str, Any]:
    if event == "snapshot":
        meta = payload["meta"]
        return {"state": payload["state"], "total_images": meta["total_images"], "completed": meta["completed"],
                "failed": meta["failed"], "current_image": meta["current_image"], "cancelled": meta["cancelled"],
                "task_id": payload["task_id"]}
    return payload


def _footer(summary: dict[str, Any], results: list[dict[str, Any]] | None = None,
            duration: float | None = None) -> str:
    failed_ids = [r["image_id"] for r in results or [] if r["status"] == "failed"]
    return render_template("writer/_modal_footer.html", summary=summary, task_id=summary.get("task_id"),
                           failed_ids=failed_ids, duration=duration)


def _item(item: dict[str, Any]) -> str:
    return render_template("writer/_queue_item.html", item=item)


def html_formatter(event: str, payload: dict[str, Any], event_id: str) -> str:
    """Turn one task event into the fragments the modal swaps in (by sse-swap name)."""
    if event == "image":
        return sse(f"image-{payload['image_id']}", _item(payload), event_id)
    if event == "task":
        if payload.get("state") in ("SUCCESS", "FAILURE"):
            return ""  # the ``done`` event that follows renders the final footer
        return sse("summary", _footer(payload), event_id)
    if event == "done":
        return (sse("summary", _footer(payload, payload.get("results"), payload.get("duration_seconds")))
                + sse("done", "done", event_id))
    # snapshot: every bar, then the footer
    parts = [sse(f"image-{item['image_id']}", _item(item)) for item in payload["meta"]["queue"]]
    summary = _summary_from(event, payload)
    if payload["state"] in ("SUCCESS", "FAILURE"):
        return "".join(parts)  # ``done`` follows at once
    parts.append(sse("summary", _footer(summary), event_id))
    return "".join(parts)


def _task_or_404(task_id: str):  # noqa: ANN202
    task = get_task(current_account_id(), task_id)
    if task is None:
        abort(404, description="No such batch.")
    if task.running:
        reconcile(task)
    return task


@bp.get("/<task_id>/modal")
@login_required
def task_modal(task_id: str) -> str:
    """The modal showing the true state of a task (used after the click, and to reopen it)."""
    task = _task_or_404(task_id)
    summary, items, _ = task_view(task)
    from ..tasks.state import result_body

    result = result_body(summary, items)
    failed_ids = [r["image_id"] for r in result["results"] if r["status"] == "failed"]
    note = None
    if task.content is not None:  # what the article's cap leaves out, as the click's answer said
        note = plan_queue(task.content.images, image_generation_config(task.account_id)["max_in_article_images"]).note
    return render_template("writer/_modal.html", items=items, summary=summary, task_id=task.id,
                           title=summary.get("content_title") or "", content_id=task.content_id,
                           failed_ids=failed_ids, duration=result["duration_seconds"], note=note)


@bp.get("/<task_id>/stream")
@login_required
def fragment_stream(task_id: str) -> Response:
    task = _task_or_404(task_id)
    return event_stream(sse_stream(current_app._get_current_object(), current_account_id(), task.id,
                                    request.headers.get("Last-Event-ID"), html_formatter,
                                    credential_check(stream_credential())))
