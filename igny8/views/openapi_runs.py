"""The bulk-run part of the OpenAPI document (DESIGN.md, "Bulk runs"): generate_bulk and the runs."""

from __future__ import annotations

from typing import Any

from ..models import MAX_DB_ID
from ..progress.schema import Outcome, TaskState
from ..tasks.bulk import MAX_CONTENT_IDS
from .openapi_parts import API, TASK_ID, error, json_body, json_response, nullable, obj, ok, operation, ref

RUN_ID = "^[0-9a-f]{32}$"
RUN_STATES = ("queued", "running", "finished", "cancelled")
count = {"type": "integer", "minimum": 0}


def run_schemas() -> dict[str, Any]:
    content_id = {"type": "integer", "minimum": 1, "maximum": MAX_DB_ID}
    task_row = {"task_id": {"type": "string", "pattern": TASK_ID}, "content_id": content_id,
                "total_images": {"type": "integer", "minimum": 1}}
    summary = {
        "run_id": {"type": "string", "pattern": RUN_ID}, "state": {"enum": list(RUN_STATES)},
        "cancelled": {"type": "boolean"}, "source": {"enum": ["web", "api", "cli"]},
        "articles": count, "articles_done": count, "images": count, "completed": count, "failed": count,
        "remaining": count, "cost": {"type": "number", "minimum": 0},
        "eta": nullable({"type": "number", "minimum": 0, "description": "Seconds left, from the measured latency "
                         "of the account's provider and model, over the workers; null once nothing waits"}),
        "created_at": {"type": "number"}, "finished_at": nullable({"type": "number"}),
        "tasks": {"type": "array", "items": obj({
            **task_row, "content_title": {"type": "string"}, "state": {"enum": list(TaskState)},
            "outcome": nullable({"enum": list(Outcome)}), "completed": count, "failed": count,
            "cost": {"type": "number", "minimum": 0}}, extra=True)},
    }
    return {
        "GenerateBulk": obj({
            "content_ids": nullable({"type": "array", "minItems": 1, "maxItems": MAX_CONTENT_IDS,
                                     "items": content_id}),
            "all_missing": nullable({"type": "boolean"}),
        }, required=(), anyOf=[
            {"required": ["content_ids"], "properties": {"content_ids": {"type": "array"},
                                                         "all_missing": {"not": {"const": True}}}},
            {"required": ["all_missing"], "properties": {"all_missing": {"const": True},
                                                         "content_ids": {"type": "null"}}},
        ], description="content_ids, or all_missing: true (every article with a pending or failed image)."),
        "BulkAnswer": ok({
            "run_id": {"type": "string", "pattern": RUN_ID},
            "tasks": {"type": "array", "items": obj(task_row)},
            "total_images": {"type": "integer", "minimum": 1},
            "skipped": {"type": "array", "description": "Articles with nothing to generate",
                        "items": obj({"content_id": content_id, "reason": {"type": "string"}})},
        }),
        "RunSummary": ok(summary, required=("success", *(k for k in summary if k != "tasks"))),
    }


def run_paths() -> dict[str, Any]:
    by_run = [{"name": "run_id", "in": "path", "required": True, "description": "The run id from generate_bulk.",
               "schema": {"type": "string", "pattern": RUN_ID}}]
    answer = json_response("The run: one task per article, and the articles skipped", ref("BulkAnswer"))
    return {
        f"{API}/writer/images/generate_bulk/": {"post": operation("Generate images in bulk", {
            "202": answer, "404": error("NotFound"), "409": error("Conflict"), "503": error("Unavailable")},
            body=json_body(ref("GenerateBulk")))},
        f"{API}/runs/{{run_id}}/": {"get": operation("Run summary", {
            "200": json_response("Counts, cost, ETA and one row per article", ref("RunSummary")),
            "404": error("NotFound")}, parameters=by_run)},
        f"{API}/runs/{{run_id}}/cancel": {"post": operation("Cancel a run", {
            "200": json_response("Queued tasks ended; running ones stop after the image in flight",
                                 ref("RunSummary")),
            "404": error("NotFound"), "409": error("Conflict")}, parameters=by_run)},
        f"{API}/runs/{{run_id}}/retry": {"post": operation("Retry a run's failed images", {
            "202": answer, "404": error("NotFound"), "409": error("Conflict"), "503": error("Unavailable")},
            parameters=by_run)},
    }
