"""Command line: ``flask --app igny8 <command>``."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from ..accounts.auth import create_user, find_user_by_email
from ..extensions import db
from ..models import Account


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Create the demo account, login and articles (safe to run again)."""
    from ..accounts.demo import DEMO_EMAIL, DEMO_PASSWORD, seed_demo

    account = seed_demo()
    click.echo(f"Demo account {account.name!r} ready: log in as {DEMO_EMAIL} / {DEMO_PASSWORD}")


@click.command("create-user")
@with_appcontext
@click.option("--email", required=True, help="Login email.")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="Password.")
@click.option("--account", "account_name", default=None, help="Account name (a new account; default: the email).")
@click.option("--admin/--no-admin", default=False, help="An admin manages the account's settings and keys.")
@click.option("--operator/--no-operator", default=False,
              help="Platform staff: may open /rq and /metrics, which show every account's work.")
def create_user_command(email: str, password: str, account_name: str | None, admin: bool, operator: bool) -> None:
    """Create a user in a new account."""
    if find_user_by_email(email):
        raise click.ClickException(f"A user with email {email} exists already.")
    if len(password) < 8:
        raise click.ClickException("The password must have at least 8 characters.")
    account = Account(name=account_name or email)
    db.session.add(account)
    create_user(email, password, account=account, is_admin=admin, is_operator=operator)
    db.session.commit()
    roles = " ".join(role for role, held in (("admin", admin), ("operator", operator)) if held)
    click.echo(f"Created {roles + ' ' if roles else ''}user {email} in account {account.name!r} (id {account.id}).")


@click.command("grant-operator")
@with_appcontext
@click.argument("email")
@click.option("--revoke", is_flag=True, help="Take the operator role away instead.")
def grant_operator_command(email: str, revoke: bool) -> None:
    """Make an existing user an operator (platform staff), or no longer one with --revoke."""
    user = find_user_by_email(email)
    if user is None:
        raise click.ClickException(f"No user with email {email}.")
    user.is_operator = not revoke
    db.session.commit()
    click.echo(f"{user.email} is {'no longer' if revoke else 'now'} an operator.")


def register_commands(app: Flask) -> None:
    from . import runs  # noqa: F401 - adds ``images bulk`` and ``images run`` to the images group
    from .images import images_group, settings_group, tasks_group

    for command in (seed_demo_command, create_user_command, grant_operator_command, images_group, tasks_group,
                    settings_group):
        app.cli.add_command(command)
