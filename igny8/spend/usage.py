"""Usage: what an account's images cost over a date range, grouped by day, provider, model or
article, from the ledger (``SpendEntry``: one row per image outcome, with what it cost)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import case, func, select

from ..extensions import db
from ..models import Content, SpendEntry, utcnow

GROUPS = ("day", "provider", "model", "content")
MAX_DAYS = 366
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class UsageError(ValueError):
    """A bad query parameter; the message says which and why (HTTP 400)."""


def _date(args: Mapping[str, str], name: str, default: date) -> date:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    if not _DATE.match(raw):
        raise UsageError(f"{name} must be a date as YYYY-MM-DD.")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise UsageError(f"{name} is not a calendar date: {raw[:10]}.") from None


def parse_query(args: Mapping[str, str]) -> tuple[date, date, str]:
    """(from, to, group) of a usage request; the default range is this calendar month (UTC) to
    today. Raises UsageError."""
    today = utcnow().date()
    start = _date(args, "from", today.replace(day=1))
    end = _date(args, "to", max(today, start))
    group = args.get("group") or "day"
    if group not in GROUPS:
        raise UsageError(f"group must be one of: {', '.join(GROUPS)}.")
    if end < start:
        raise UsageError("from must not be after to.")
    if (end - start).days >= MAX_DAYS:
        raise UsageError(f"The range may span at most {MAX_DAYS} days.")
    return start, end, group


def _key_column(group: str) -> Any:
    return {"day": func.date(SpendEntry.created_at), "provider": SpendEntry.provider, "model": SpendEntry.model,
            "content": SpendEntry.content_id}[group]


def usage_rows(account_id: int, start: date, end: date, group: str) -> list[dict[str, Any]]:
    """``[{key, label, images, failed, cost}]`` ordered by key: ``images`` generated, ``failed``
    failed, ``cost`` everything paid (a failed image the provider billed included)."""
    key = _key_column(group).label("key")
    query = (select(key, func.sum(case((SpendEntry.outcome == "generated", 1), else_=0)),
                    func.sum(case((SpendEntry.outcome == "failed", 1), else_=0)), func.sum(SpendEntry.cost))
             .where(SpendEntry.account_id == account_id,
                    SpendEntry.created_at >= datetime.combine(start, time.min),
                    SpendEntry.created_at < datetime.combine(end + timedelta(days=1), time.min))
             .group_by(key).order_by(key))
    rows = [{"key": "" if k is None else str(k), "images": int(images or 0), "failed": int(failed or 0),
             "cost": round(float(cost or 0.0), 6)} for k, images, failed, cost in db.session.execute(query)]
    titles = _titles(account_id, rows) if group == "content" else {}
    for row in rows:
        row["label"] = titles.get(row["key"], f"Deleted article #{row['key']}") if group == "content" else row["key"]
    return rows


def _titles(account_id: int, rows: list[dict[str, Any]]) -> dict[str, str]:
    ids = [int(row["key"]) for row in rows if row["key"].isdigit()]
    found = db.session.execute(select(Content.id, Content.title).where(Content.account_id == account_id,
                                                                         Content.id.in_(ids)))
    return {str(content_id): title for content_id, title in found}


def daily_series(rows: list[dict[str, Any]], start: date, end: date) -> list[dict[str, Any]]:
    """The ``day`` rows with every day of the range present (zeros where nothing happened)."""
    by_day = {row["key"]: row for row in rows}
    days = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    return [by_day.get(day, {"key": day, "label": day, "images": 0, "failed": 0, "cost": 0.0}) for day in days]


def safe_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def usage_csv(rows: list[dict[str, Any]], group: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([group, "label", "images", "failed", "cost_usd"])
    for row in rows:
        writer.writerow([safe_cell(row["key"]), safe_cell(row["label"]), row["images"], row["failed"],
                         f"{row['cost']:.6f}"])
    return out.getvalue()
