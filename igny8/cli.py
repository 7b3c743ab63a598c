"""Command line: ``flask --app igny8 <command>``."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from .auth import create_user, find_user_by_email
from .extensions import db
from .models import Account


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Create the demo account, login and articles (safe to run again)."""
    from .demo import DEMO_EMAIL, DEMO_PASSWORD, seed_demo

    account = seed_demo()
    click.echo(f"Demo account {account.name!r} ready: log in as {DEMO_EMAIL} / {DEMO_PASSWORD}")


@click.command("create-user")
@with_appcontext
@click.option("--email", required=True, help="Login email.")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="Password.")
@click.option("--account", "account_name", default=None, help="Account name (a new account; default: the email).")
@click.option("--admin/--no-admin", default=False, help="Admins may open /rq (the queue dashboard).")
def create_user_command(email: str, password: str, account_name: str | None, admin: bool) -> None:
    """Create a user in a new account."""
    if find_user_by_email(email):
        raise click.ClickException(f"A user with email {email} exists already.")
    if len(password) < 8:
        raise click.ClickException("The password must have at least 8 characters.")
    account = Account(name=account_name or email)
    db.session.add(account)
    create_user(email, password, account=account, is_admin=admin)
    db.session.commit()
    click.echo(f"Created {'admin ' if admin else ''}user {email} in account {account.name!r} (id {account.id}).")


def register_commands(app: Flask) -> None:
    from .cli_images import images_group, settings_group, tasks_group

    for command in (seed_demo_command, create_user_command, images_group, tasks_group, settings_group):
        app.cli.add_command(command)
