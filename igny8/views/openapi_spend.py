"""The spend part of the OpenAPI document: the budget, the dry run's answer, the 402, and usage."""

from __future__ import annotations

from typing import Any

from ..integrations.settings import MAX_MONTHLY_BUDGET
from ..spend.usage import GROUPS, MAX_DAYS
from .openapi_parts import API, error, json_response, nullable, obj, ok, operation, ref

DATE = "^([0-9]{4}-[0-9]{2}-[0-9]{2})?$"  # empty: the default
MONTHLY_BUDGET = nullable({"type": "number", "minimum": 0, "maximum": MAX_MONTHLY_BUDGET,
                           "description": "USD per calendar month (UTC); null: no budget"})


def spend_schemas() -> dict[str, Any]:
    money = {"type": "number"}
    return {
        "Budget": obj({"monthly": nullable(money), "spent": money, "reserved": money,
                       "remaining": nullable({**money, "description": "null when there is no budget"})}),
        "DryRunAnswer": ok({
            "dry_run": {"const": True}, "queue": {"type": "array", "items": ref("ImageQueueItem"),
                                                  "description": "Each item also carries its estimated_cost"},
            "estimated_cost": money, "budget": ref("Budget"), "within_budget": {"type": "boolean"},
            "provider": {"type": "string"}, "model": {"type": "string"},
            "note": nullable({"type": "string"})}),
        "BudgetExceeded": obj({"success": {"const": False}, "error": {"type": "string"}, "estimated_cost": money,
                               "budget": ref("Budget")}),
        "UsageRow": obj({"key": {"type": "string"}, "label": {"type": "string"},
                         "images": {"type": "integer", "minimum": 0}, "failed": {"type": "integer", "minimum": 0},
                         "cost": money}),
        "Usage": ok({"group": {"enum": list(GROUPS)}, "from": {"type": "string"}, "to": {"type": "string"},
                     "rows": {"type": "array", "items": ref("UsageRow")},
                     "totals": obj({"images": {"type": "integer"}, "failed": {"type": "integer"}, "cost": money}),
                     "budget": ref("Budget")}),
    }


def generate_responses() -> dict[str, Any]:
    """What generate_images answers besides 202: the dry run, and the budget's refusal."""
    return {"200": json_response("dry_run: the queue, its estimate and the month's budget; nothing queued",
                                 ref("DryRunAnswer")),
            "402": json_response("The estimate exceeds what remains of the monthly budget; nothing queued",
                                 ref("BudgetExceeded"))}


def spend_paths() -> dict[str, Any]:
    query = [
        {"name": "from", "in": "query", "required": False, "description": "Default: the 1st of this month (UTC).",
         "schema": {"type": "string", "pattern": DATE}},
        {"name": "to", "in": "query", "required": False, "description": "Default: today (UTC); inclusive.",
         "schema": {"type": "string", "pattern": DATE}},
        {"name": "group", "in": "query", "required": False, "description": "Empty or absent: day.",
         "schema": {"enum": [*GROUPS, ""]}},
        {"name": "format", "in": "query", "required": False, "description": "Empty or absent: json.",
         "schema": {"enum": ["json", "csv", ""]}},
    ]
    return {f"{API}/usage/": {"get": operation("Usage", {
        "200": {"description": f"Rows of images, failed and cost per key (a range of at most {MAX_DAYS} days); "
                               "format=csv: the same rows as CSV",
                "content": {"application/json": {"schema": ref("Usage")},
                            "text/csv": {"schema": {"type": "string"}}}},
        "400": error("BadRequest")}, parameters=query)}}
