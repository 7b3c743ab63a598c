"""The monthly budget, held atomically: ``estimate`` what images will cost, ``reserve`` it at the
enqueue (or refuse: ``BudgetExceeded``, HTTP 402), ``settle`` each image with its real cost when
it is stored or fails, ``release`` what a task no longer needs when it ends, is cancelled or is
failed by the sweep.

The database is the one truth (docs/costs.md): *spent* is the ledger (``SpendEntry``) of this
calendar month (UTC), *reserved* the open ``SpendReservation`` rows. ``reserve`` and ``settle``
first take the account's lock, the account row: ``SELECT … FOR UPDATE`` on PostgreSQL, and on
SQLite a write to that row, which takes the database's single write lock. So the check "estimate
<= monthly - spent - reserved" and the insert of the reservation are one step for every web
process and worker: 50 clicks at once are served one after another and cannot overspend. None of
these functions commits: the caller commits them with the rows they go with (the task, the image).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text

from ..extensions import db
from ..integrations.settings import image_generation_config
from ..models import Account, GenerationTask, Image, SpendEntry, SpendReservation, utcnow
from ..progress.schema import RUNNING_STATES
from ..providers.base import ImageProvider
from ..tasks.requests import QueueError
from .alerts import check_threshold
from .prices import configured_prices_file, image_price


@dataclass(frozen=True)
class Budget:
    """The account's month: ``monthly`` None means no budget (``remaining`` is then None too)."""

    monthly: float | None
    spent: float
    reserved: float

    @property
    def remaining(self) -> float | None:
        return None if self.monthly is None else round(self.monthly - self.spent - self.reserved, 6)

    def to_dict(self) -> dict[str, Any]:
        return {"monthly": self.monthly, "spent": round(self.spent, 6), "reserved": round(self.reserved, 6),
                "remaining": self.remaining}


class BudgetExceeded(QueueError):
    """The estimate exceeds what remains of the month's budget: nothing may be queued (402). A
    QueueError, so every caller that answers those (pages, CLI) answers this one too; the API's
    handler adds the budget to the body."""

    def __init__(self, estimated: float, budget: Budget) -> None:
        super().__init__(402, f"This would cost about ${estimated:.2f} but only ${max(budget.remaining or 0, 0):.2f} "
                              f"of this month's ${budget.monthly:.2f} budget remains; nothing was queued. "
                              "Raise the budget in Settings or wait for next month.")
        self.estimated, self.budget = estimated, budget


@dataclass(frozen=True)
class Estimate:
    total: float
    per_image: dict[int, float]
    provider: str
    model: str


def month_start(now: datetime | None = None) -> datetime:
    """The first instant of the calendar month (naive UTC, as every stored timestamp)."""
    return (now or utcnow()).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def image_size(provider: str, image_type: str) -> tuple[int, int]:
    """The size the provider is asked for (``ImageProvider.size_for``), without building a provider."""
    sizes = ImageProvider.sizes
    if provider == "runware":
        from ..providers.runware_provider import RunwareProvider

        sizes = RunwareProvider.sizes
    return sizes.get(image_type, sizes["in_article"])


def price_of(image_type: str, settings: dict[str, Any]) -> float:
    """What one image of ``image_type`` costs with the account's ``settings``, from the price
    table (0 for a price it lacks: every provider has a wildcard entry, so only a model the
    SDK no longer lists has none)."""
    provider, model = settings["provider"], settings["model"]
    partials = int(settings.get("partial_images", 0)) if provider == "openai" else 0
    width, height = image_size(provider, image_type)
    return image_price(provider, model, width, height, settings.get("quality", "medium"), partials,
                       configured_prices_file()) or 0.0


def estimate(images: Iterable[Image], settings: dict[str, Any]) -> Estimate:
    """What ``images`` will cost with the account's ``settings`` (``price_of`` each)."""
    per_image = {image.id: price_of(image.type, settings) for image in images}
    return Estimate(round(sum(per_image.values()), 6), per_image, settings["provider"], settings["model"])


def budget_for(account_id: int, monthly: float | None) -> Budget:
    spent = db.session.scalar(select(func.coalesce(func.sum(SpendEntry.cost), 0.0)).where(
        SpendEntry.account_id == account_id, SpendEntry.created_at >= month_start()))
    reserved = db.session.scalar(select(func.coalesce(func.sum(SpendReservation.amount), 0.0)).where(
        SpendReservation.account_id == account_id))
    return Budget(None if monthly is None else float(monthly), float(spent or 0.0), float(reserved or 0.0))


def lock_account(account_id: int) -> None:
    """Serialize the budget of one account until the transaction ends (see the module docstring).
    Pending changes are flushed first, so every path takes its row locks in one order: the image
    rows (and the account_totals row their triggers update), then the account's row — never the
    other way round, which could deadlock with a generate on PostgreSQL."""
    db.session.flush()
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(text("UPDATE account SET id = id WHERE id = :id"), {"id": account_id})
    else:
        db.session.execute(select(Account.id).where(Account.id == account_id).with_for_update())


def reserve(account_id: int, task_id: str, planned: Estimate, monthly: float | None) -> None:
    """Hold ``planned`` for the task's images, or raise BudgetExceeded; the caller commits (with the
    task) or rolls back."""
    reserve_many(account_id, {task_id: planned}, monthly)


def reserve_many(account_id: int, planned: dict[str, Estimate], monthly: float | None) -> None:
    """``reserve`` for many tasks at once (a bulk run): all of them or none (BudgetExceeded), one
    lock, one batch INSERT however many images. The caller commits or rolls back."""
    total = round(sum(p.total for p in planned.values()), 6)
    if monthly is not None:
        lock_account(account_id)
        budget = budget_for(account_id, monthly)
        if total > (budget.remaining or 0.0) + 1e-9:
            raise BudgetExceeded(total, budget)
    rows = [{"account_id": account_id, "task_id": task_id, "image_id": image_id, "provider": p.provider,
             "model": p.model, "amount": amount, "created_at": utcnow()}
            for task_id, p in planned.items() for image_id, amount in p.per_image.items()]
    if rows:
        db.session.execute(insert(SpendReservation), rows)


def release_many(task_ids: list[str]) -> None:
    """``release`` for many tasks (a cancelled run's waiting tasks); the caller commits."""
    for start in range(0, len(task_ids), 1000):
        db.session.execute(delete(SpendReservation).where(SpendReservation.task_id.in_(task_ids[start:start + 1000])))


def monthly_budget(account_id: int) -> float | None:
    return image_generation_config(account_id)["monthly_budget"]


def settle(image: Image, task_id: str | None, outcome: str, cost: float, *, provider: str | None = None,
           model: str | None = None) -> None:
    """The image is stored (``generated``) or ``failed`` with ``cost`` really paid: its reservation
    becomes a ledger entry. The caller commits, with the image's own outcome."""
    monthly = monthly_budget(image.account_id)
    if monthly:  # the lock makes the 80 % check exact; without a budget there is nothing to check
        lock_account(image.account_id)
    held = db.session.scalar(select(SpendReservation).filter_by(task_id=task_id, image_id=image.id)) \
        if task_id else None
    before = budget_for(image.account_id, monthly).spent if monthly else 0.0
    db.session.add(SpendEntry(account_id=image.account_id, task_id=task_id, image_id=image.id,
                              content_id=image.content_id, outcome=outcome, cost=cost,
                              provider=provider or (held.provider if held else "unknown"),
                              model=model or (held.model if held else "unknown")))
    if held is not None:
        db.session.delete(held)
    if monthly:
        check_threshold(image.account_id, monthly, before, before + cost)


def release(task_id: str) -> None:
    """Drop what the task still holds (it ended, was cancelled, or its worker died); the caller commits."""
    db.session.execute(delete(SpendReservation).where(SpendReservation.task_id == task_id))


def release_ended() -> int:
    """The sweep's repair: drop reservations whose task has ended (none should be left); the
    caller commits. Returns how many were dropped."""
    running = select(GenerationTask.id).where(GenerationTask.state.in_(RUNNING_STATES))
    return db.session.execute(delete(SpendReservation).where(SpendReservation.task_id.not_in(running))).rowcount
