"""The Usage page: this month against the budget, a chart of images and cost per day, the rows
of the chosen grouping, and their CSV."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy.exc import SQLAlchemyError

from ..accounts.auth import current_account_id
from ..integrations.settings import image_generation_config
from ..spend.alerts import THRESHOLD, over_threshold
from ..spend.budget import budget_for, price_of
from ..spend.chart import build_chart
from ..spend.usage import GROUPS, UsageError, daily_series, parse_query, usage_rows

bp = Blueprint("usage", __name__)


@bp.get("/writer/usage")
@login_required
def usage() -> ResponseReturnValue:
    account_id = current_account_id()
    budget = budget_for(account_id, image_generation_config(account_id)["monthly_budget"])
    try:
        start, end, group = parse_query(request.args)
    except UsageError as exc:
        start, end, group = parse_query({})
        error = str(exc)
    else:
        error = None
    days = daily_series(usage_rows(account_id, start, end, "day"), start, end)
    rows = days if group == "day" else usage_rows(account_id, start, end, group)
    totals = {"images": sum(r["images"] for r in rows), "failed": sum(r["failed"] for r in rows),
              "cost": sum(r["cost"] for r in rows)}
    used = (budget.spent / budget.monthly) if budget.monthly else None
    return render_template("usage/index.html", budget=budget, used=used, threshold=THRESHOLD, start=start, end=end,
                           group=group, groups=GROUPS, rows=rows, totals=totals, chart=build_chart(days),
                           error=error), 400 if error else 200


@bp.app_context_processor
def budget_banner() -> dict:
    """``budget_alert()`` for base.html: the month's budget when 80 % of it is spent, else None
    (called only by the full pages that show the banner; one query pair)."""

    def budget_alert() -> dict | None:
        if not current_user.is_authenticated:
            return None
        account_id = current_account_id()
        try:
            budget = budget_for(account_id, image_generation_config(account_id)["monthly_budget"])
        except SQLAlchemyError:  # an error page about the database itself still renders
            return None
        if not over_threshold(budget.monthly, budget.spent):
            return None
        return {**budget.to_dict(), "used": budget.spent / budget.monthly}  # type: ignore[operator]

    def spend_preview(items: list[Any], settings: dict[str, Any]) -> dict[str, Any]:
        """The estimate of a queue preview (``QueueItem``s) and what remains of the month: the modal
        shows it as it opens, from the page (no round trip)."""
        if "month_budget" not in g:
            g.month_budget = budget_for(current_account_id(), settings["monthly_budget"])
        total = round(sum(price_of(item.type, settings) for item in items), 6)
        remaining = g.month_budget.remaining
        return {"estimated": total, "monthly": g.month_budget.monthly, "remaining": remaining,
                "within": remaining is None or total <= remaining + 1e-9}

    return {"budget_alert": budget_alert, "spend_preview": spend_preview}
