"""``flask images bulk`` and ``flask images run``: a bulk run from the terminal, with one overall
bar (images done of total, failed, cost) until the run ends."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from flask.cli import with_appcontext

from ..extensions import db
from ..models import MAX_DB_ID, Account, Content, Run
from ..tasks.bulk import create_run
from ..tasks.requests import QueueError
from ..tasks.runs import run_summary
from .images import BAR_WIDTH, _warn_if_no_worker, images_group

POLL_SECONDS = 0.5
FINAL_STATES = ("finished", "cancelled")


def run_line(body: dict[str, Any]) -> str:
    """``[████░░] 120/500 images (3 failed), 40/167 articles, $0.1200, ETA 2m 5s — running``."""
    total = body["images"] or 1
    done = body["completed"] + body["failed"]
    filled = BAR_WIDTH * done // total
    colour = "red" if body["failed"] and done == total else ("green" if done == total else "cyan")
    bar = click.style("█" * filled + "░" * (BAR_WIDTH - filled), fg=colour)
    eta = body.get("eta")
    eta_text = f", ETA {int(eta) // 60}m {int(eta) % 60}s" if eta is not None else ""
    return (f"{bar} {body['completed']}/{body['images']} images ({body['failed']} failed), "
            f"{body['articles_done']}/{body['articles']} articles, ${body['cost']:.4f}{eta_text} — {body['state']}")


def watch_run(run_id: str) -> dict[str, Any]:
    """Redraw the overall bar until the run ends; returns its final summary."""
    out, last = sys.stdout, None
    while True:
        db.session.rollback()  # read what the workers committed since the last look
        run = db.session.get(Run, run_id)
        body = run_summary(run, with_rows=False)
        line = run_line(body)
        if out.isatty():
            click.echo(f"\r\x1b[2K{line}", nl=False)
        elif line != last:
            click.echo(line)  # click drops the colours on a pipe
        out.flush()
        last = line
        if body["state"] in FINAL_STATES:
            if out.isatty():
                click.echo("")
            return body
        time.sleep(POLL_SECONDS)


def _finish(body: dict[str, Any]) -> None:
    click.echo(f"Run {body['run_id']} {body['state']}: {body['completed']} generated, {body['failed']} failed "
               f"of {body['images']} images in {body['articles']} articles, cost ${body['cost']:.4f}")
    if body["failed"] or body["state"] != "finished" or body["completed"] < body["images"]:
        sys.exit(1)


@images_group.command("bulk")
@click.option("--all-missing", is_flag=True, help="Every article of the account with a pending or failed image.")
@click.option("--content-id", "content_ids", type=click.IntRange(1, MAX_DB_ID), multiple=True,
              help="An article id (repeat the option for more).")
@click.option("--account", "account_id", type=click.IntRange(1, MAX_DB_ID), default=None,
              help="The account (needed with --all-missing; else the articles' account).")
@click.option("--no-wait", is_flag=True, help="Create the run and print its id without watching.")
@with_appcontext
def bulk_command(all_missing: bool, content_ids: tuple[int, ...], account_id: int | None, no_wait: bool) -> None:
    """Create a bulk run (one batch per article, by the queue rule) and show one overall bar until it
    ends (exit 1 unless every image was generated)."""
    if all_missing == bool(content_ids):
        raise click.UsageError("Give either --all-missing or one or more --content-id.")
    if account_id is None:
        if all_missing:
            raise click.UsageError("--all-missing needs --account ID.")
        first = db.session.get(Content, content_ids[0])
        if first is None:
            raise click.ClickException(f"No article with id {content_ids[0]}.")
        account_id = first.account_id
    elif db.session.get(Account, account_id) is None:
        raise click.ClickException(f"No account with id {account_id}.")
    try:
        created = create_run(account_id, None, "cli", list(dict.fromkeys(content_ids)) or None, all_missing)
    except QueueError as exc:
        raise click.ClickException(exc.message) from exc
    body = created.body()
    click.echo(f"Run {body['run_id']}: {len(body['tasks'])} article(s), {body['total_images']} image(s)"
               + (f"; {len(body['skipped'])} skipped (nothing to generate)" if body["skipped"] else ""))
    _warn_if_no_worker()
    if not no_wait:
        _finish(watch_run(created.run.id))


@images_group.command("run")
@click.argument("run_id")
@with_appcontext
def run_command(run_id: str) -> None:
    """Follow a bulk run until it ends (exit 1 unless every image was generated)."""
    run = db.session.get(Run, run_id)
    if run is None:
        raise click.ClickException(f"No run {run_id}.")
    _finish(watch_run(run.id))
