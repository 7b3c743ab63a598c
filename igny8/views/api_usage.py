"""JSON API: the account's usage (images and cost) over a date range, as JSON or CSV."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from ..accounts.auth import current_account_id
from ..integrations.settings import image_generation_config
from ..spend.budget import budget_for
from ..spend.prices import price_table
from ..spend.usage import UsageError, parse_query, usage_csv, usage_rows
from .api_common import api_login_required

bp = Blueprint("api_usage", __name__, url_prefix="/api/v1/usage")


@bp.record_once
def _check_prices_file(state: BlueprintSetupState) -> None:
    """A malformed ``PRICES_FILE`` stops the app (web or worker) at start-up, naming the entry,
    rather than failing every estimate later."""
    price_table(state.app.config.get("PRICES_FILE"))


@bp.get("/")
@api_login_required
def usage() -> ResponseReturnValue:
    """``?from=YYYY-MM-DD&to=YYYY-MM-DD&group=day|provider|model|content`` → rows of
    ``{key, label, images, failed, cost}`` (``&format=csv``: the same rows as a CSV download);
    400 with a clear message for a bad date, range or group."""
    account_id = current_account_id()
    fmt = request.args.get("format") or "json"
    if fmt not in ("json", "csv"):
        abort(400, description="format must be json or csv.")
    try:
        start, end, group = parse_query(request.args)
    except UsageError as exc:
        abort(400, description=str(exc))
    rows = usage_rows(account_id, start, end, group)
    if fmt == "csv":
        name = f"igny8-usage-{group}-{start.isoformat()}-{end.isoformat()}.csv"
        return usage_csv(rows, group), 200, {"Content-Type": "text/csv; charset=utf-8",
                                              "Content-Disposition": f'attachment; filename="{name}"'}
    budget = budget_for(account_id, image_generation_config(account_id)["monthly_budget"])
    totals = {"images": sum(r["images"] for r in rows), "failed": sum(r["failed"] for r in rows),
              "cost": round(sum(r["cost"] for r in rows), 6)}
    return jsonify(success=True, group=group, **{"from": start.isoformat(), "to": end.isoformat()}, rows=rows,
                   totals=totals, budget=budget.to_dict())
