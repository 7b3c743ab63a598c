"""``flask images generate|watch``, ``flask tasks reconcile``, ``flask settings show``: the
operator's terminal view, fed by the same event stream as the browser."""

from __future__ import annotations

import sys
from typing import Any

import click
from flask.cli import with_appcontext
from redis.exceptions import RedisError
from rq import Worker
from sqlalchemy import select

from ..extensions import db
from ..integrations.settings import CREDENTIAL_TYPES, credentials_public, image_generation_config
from ..models import MAX_DB_ID, Account, Content, GenerationTask
from ..progress.events import EventName
from ..progress.schema import ImageStatus, ItemStatus, Outcome
from ..redis_client import get_rq_redis
from ..streaming.events import task_events
from ..tasks.reconcile import reconcile
from ..tasks.requests import QueueError
from ..tasks.service import queue_task
from ..text import plain

BAR_WIDTH = 24
COLOURS = {ItemStatus.COMPLETED: "green", ItemStatus.FAILED: "red", ItemStatus.PROCESSING: "cyan"}


class TerminalBars:
    """One line per image; redrawn in place on a terminal, appended otherwise (logs, pipes)."""

    def __init__(self, out: Any = None) -> None:
        self.out = out or sys.stdout
        self.tty = self.out.isatty()
        self.items: dict[int, dict[str, Any]] = {}
        self.drawn = 0

    def update(self, item: dict[str, Any]) -> None:
        old = self.items.get(item["image_id"])
        self.items[item["image_id"]] = item
        if self.tty:
            self.redraw()
        elif old is None or (old["status"], old.get("progress")) != (item["status"], item.get("progress")):
            click.echo(self.line(item), file=self.out)  # click drops the colours on a pipe
        self.out.flush()

    def redraw(self) -> None:
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F")
        lines = [self.line(item) for item in sorted(self.items.values(), key=lambda i: i["index"])]
        click.echo("".join(f"\x1b[2K{line}\n" for line in lines), file=self.out, nl=False)
        self.drawn = len(lines)

    @staticmethod
    def line(item: dict[str, Any]) -> str:
        percent = 100 if item["status"] == ItemStatus.COMPLETED else int(item.get("progress") or 0)
        filled = BAR_WIDTH * percent // 100
        colour = COLOURS.get(item["status"])
        bar = click.style("█" * filled + "░" * (BAR_WIDTH - filled), fg=colour)
        tail = plain(item.get("error") or item.get("image_url") or "")  # rows stored before errors were cleaned
        return f"#{item['index']:<2} {item['label']:<20} {bar} {percent:3d}% {item['status']:<10} {tail}"


def watch(account_id: int, task_id: str) -> dict[str, Any]:
    """Draw the bars until the task is done; returns the final result."""
    bars = TerminalBars()
    for event in task_events(account_id, task_id):
        if event.name == EventName.SNAPSHOT:
            for item in event.data["meta"]["queue"]:
                bars.update(item)
        elif event.name == EventName.IMAGE:
            bars.update(event.data)
        elif event.name == EventName.LOST:
            raise click.ClickException("Lost the connection to Redis; run `flask images watch` again.")
        elif event.name == EventName.DONE:
            return event.data
    raise click.ClickException(f"Task {task_id} not found.")


OUTCOME_WORDS = {Outcome.GENERATED: "all images generated", Outcome.PARTIAL: "partly generated",
                 Outcome.FAILED: "no image was generated", Outcome.CANCELLED: "cancelled"}


def _finish(result: dict[str, Any]) -> None:
    """Print the outcome in words; exit 1 unless every image was generated."""
    duration = f" in {result['duration_seconds']:.1f} s" if result.get("duration_seconds") else ""
    outcome = result.get("outcome") or Outcome.FAILED
    click.echo(f"{result['state']}: {result['completed']} generated, {result['failed']} failed{duration}, "
               f"cost ${result.get('cost') or 0:.4f} — outcome: {outcome} ({OUTCOME_WORDS.get(outcome, outcome)})"
               + (f" — {plain(result['error'])}" if result.get("error") else ""))
    if outcome != Outcome.GENERATED:
        sys.exit(1)


def _article(content_id: int) -> Content:
    content = db.session.get(Content, content_id)
    if content is None:
        raise click.ClickException(f"No article with id {content_id}.")
    return content


def _queue_and_watch(content: Content, body: dict[str, Any], no_wait: bool) -> None:
    try:
        queued = queue_task(content.account_id, body, source="cli")
    except QueueError as exc:  # over the budget (402) too
        raise click.ClickException(exc.message) from exc
    click.echo(f"{'Already running' if queued.existing else 'Queued'}: task {queued.task.id}, {len(queued.items)} "
               f"image(s) for “{content.title}”")
    if queued.note:
        click.echo(queued.note)
    _warn_if_no_worker()
    if not no_wait:
        _finish(watch(content.account_id, queued.task.id))


def _warn_if_no_worker() -> None:
    """A batch queued where no worker listens would wait (and be failed by another Redis's sweep
    if the database is shared): say so at once, naming the Redis this command uses."""
    connection = get_rq_redis()
    try:
        if Worker.count(connection=connection):
            return
    except RedisError:
        return  # the watch says what is wrong with Redis
    where = connection.connection_pool.connection_kwargs
    click.echo(f"Warning: no worker is running on Redis {where.get('host')}:{where.get('port')}/{where.get('db', 0)}; "
               "the batch waits until one starts (`make run`, or `python worker.py` with the same REDIS_URL and "
               "DATABASE_URL as this command).", err=True)


@click.group("images", help="Generate images and watch batches.")
def images_group() -> None:
    pass


@images_group.command("generate")
@click.option("--content", "content_id", type=click.IntRange(1, MAX_DB_ID), required=True,
              help="Article id (its queue rule applies).")
@click.option("--no-wait", is_flag=True, help="Queue and print the task id without watching.")
@with_appcontext
def generate_command(content_id: int, no_wait: bool) -> None:
    """Queue the article's pending and failed images by the queue rule and show a live bar per
    image (exit 1 unless all were generated)."""
    content = _article(content_id)
    _queue_and_watch(content, {"content_id": content_id}, no_wait)


@images_group.command("retry")
@click.option("--content", "content_id", type=click.IntRange(1, MAX_DB_ID), required=True,
              help="Article id whose failed images to generate again.")
@click.option("--no-wait", is_flag=True, help="Queue and print the task id without watching.")
@with_appcontext
def retry_command(content_id: int, no_wait: bool) -> None:
    """Generate the article's failed images again (all of them, whatever the cap: they were chosen
    before) and show a live bar per image."""
    content = _article(content_id)
    failed = [img.id for img in content.images if img.status == ImageStatus.FAILED and img.prompt.strip()]
    if not failed:
        raise click.ClickException(f"No failed image in “{content.title}”: nothing to retry.")
    _queue_and_watch(content, {"ids": failed}, no_wait)


@images_group.command("watch")
@click.argument("task_id")
@with_appcontext
def watch_command(task_id: str) -> None:
    """Follow a batch until it ends (exit 1 if any image failed)."""
    task = db.session.get(GenerationTask, task_id)
    if task is None:
        raise click.ClickException(f"No task {task_id}.")
    _finish(watch(task.account_id, task.id))


@click.group("tasks", help="Batches: maintenance.")
def tasks_group() -> None:
    pass


@tasks_group.command("reconcile")
@with_appcontext
def reconcile_command() -> None:
    """Fail the images of batches whose worker died, so they can be queued again."""
    failed = reconcile()
    click.echo(f"Reconciled {len(failed)} stuck task(s)" + (f": {', '.join(failed)}" if failed else "."))


@click.group("settings", help="Integration settings (keys are never printed).")
def settings_group() -> None:
    pass


@settings_group.command("show")
@click.option("--account", "account_id", type=click.IntRange(1, MAX_DB_ID), default=None, help="Only this account id.")
@with_appcontext
def show_command(account_id: int | None) -> None:
    """Image generation settings and provider credentials (configured or not, masked hint)."""
    query = select(Account).order_by(Account.id)
    if account_id is not None:
        query = query.filter_by(id=account_id)
    for account in db.session.scalars(query):
        click.echo(f"Account {account.id} “{account.name}”")
        for key, value in image_generation_config(account.id).items():
            click.echo(f"  {key:<22} {value}")
        for provider in CREDENTIAL_TYPES:
            cred = credentials_public(account.id, provider)
            state = f"key {cred['key_hint']}" if cred["configured"] else "no key"
            click.echo(f"  {provider:<22} {state}, model {cred['model']}")
