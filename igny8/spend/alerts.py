"""The budget alert: when an account's spending this month crosses 80 % of its budget.

``threshold_crossed`` is the hook for the ``budget.threshold`` webhook event (webhooks are wired
to it at merge); today it writes the event to the log. It runs inside the settling transaction,
under the account's lock, so each crossing is seen by exactly one settle (a rolled-back settle may
have announced one that did not stay: at least once, never missed)."""

from __future__ import annotations

from typing import Any

from ..logs import event

THRESHOLD = 0.8


def threshold_crossed(account_id: int, budget: dict[str, Any]) -> None:
    """The ``budget.threshold`` event of ``account_id`` with its ``budget`` {monthly, spent, ...}."""
    event("budget.threshold", level=30, account=account_id, threshold=THRESHOLD, monthly=budget.get("monthly"),
          spent=f"{budget.get('spent', 0):.4f}")


def check_threshold(account_id: int, monthly: float, spent_before: float, spent_after: float) -> None:
    if monthly > 0 and spent_before < THRESHOLD * monthly <= spent_after:
        threshold_crossed(account_id, {"monthly": monthly, "spent": spent_after, "threshold": THRESHOLD})


def over_threshold(monthly: float | None, spent: float) -> bool:
    """Whether the pages show the budget banner."""
    return bool(monthly) and spent >= THRESHOLD * monthly  # type: ignore[operator]
