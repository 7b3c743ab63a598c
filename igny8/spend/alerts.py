"""The budget alert: when an account's spending this month crosses 80 % of its budget.

``threshold_crossed`` runs inside the settling transaction, under the account's lock, so each
crossing is seen by exactly one settle. It logs the event and keeps it on the session; the caller,
once its commit has made the crossing true, calls ``announce_pending`` to send the
``budget.threshold`` webhook (a rolled-back settle announces nothing)."""

from __future__ import annotations

from typing import Any

from ..extensions import db
from ..logs import event
from ..webhooks.dispatch import emit

THRESHOLD = 0.8
_PENDING = "igny8_budget_alerts"  # the session's crossings not yet announced


def threshold_crossed(account_id: int, budget: dict[str, Any]) -> None:
    """The ``budget.threshold`` event of ``account_id`` with its ``budget`` {monthly, spent, ...}."""
    event("budget.threshold", level=30, account=account_id, threshold=THRESHOLD, monthly=budget.get("monthly"),
          spent=f"{budget.get('spent', 0):.4f}")
    db.session.info.setdefault(_PENDING, []).append((account_id, budget))


def announce_pending() -> None:
    """Send the ``budget.threshold`` webhook of each crossing the last commit made (call after it)."""
    for account_id, budget in db.session.info.pop(_PENDING, []):
        emit(account_id, "budget.threshold", {"threshold": THRESHOLD, "monthly": budget.get("monthly"),
                                             "spent": round(float(budget.get("spent", 0)), 4)})


def check_threshold(account_id: int, monthly: float, spent_before: float, spent_after: float) -> None:
    if monthly > 0 and spent_before < THRESHOLD * monthly <= spent_after:
        threshold_crossed(account_id, {"monthly": monthly, "spent": spent_after, "threshold": THRESHOLD})


def over_threshold(monthly: float | None, spent: float) -> bool:
    """Whether the pages show the budget banner."""
    return bool(monthly) and spent >= THRESHOLD * monthly  # type: ignore[operator]
