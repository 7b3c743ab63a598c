"""Accounts and logins: ``Accounts`` makes an account with a user and an API token, ``AuthActions``
logs in through the form at the Flask test client (flaskr's pattern), ``login_session`` does the
same over real HTTP with ``requests``."""

from __future__ import annotations

import re

import requests
from flask import Flask
from flask.testing import FlaskClient

from igny8.accounts.auth import create_user, issue_api_token
from igny8.extensions import db
from igny8.models import Account, User

PASSWORD = "correct horse battery"


class Accounts:
    """Makes accounts with a user and an API token; each comes with the ``headers`` of Bearer requests."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def create(self, name: str = "Acme", *, admin: bool = True, operator: bool = False) -> dict:
        with self.app.app_context():
            account = Account(name=name)
            db.session.add(account)
            email = f"{name.lower().replace(' ', '-')}@example.test"
            user = create_user(email, PASSWORD, account=account, is_admin=admin, is_operator=operator)
            token = issue_api_token(user)
            db.session.commit()
            return {"account_id": account.id, "user_id": user.id, "email": email, "token": token,
                    "headers": {"Authorization": f"Bearer {token}"}}

    def make_operator(self, who: dict) -> dict:
        """Grant ``who``'s user the operator role (platform staff), as ``grant-operator`` does."""
        with self.app.app_context():
            db.session.get(User, who["user_id"]).is_operator = True
            db.session.commit()
        return who


def csrf_token_from(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert match, "every page carries the csrf-token meta tag"
    return match.group(1)


class AuthActions:
    """Logs in through the login form with its CSRF token; ``csrf`` / ``headers`` for later writes."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.csrf = ""

    def login(self, email: str, password: str = PASSWORD):  # noqa: ANN201
        self.csrf = csrf_token_from(self.client.get("/login").get_data(as_text=True))
        response = self.client.post("/login", data={"email": email, "password": password, "csrf_token": self.csrf})
        page = self.client.get("/writer/images")
        if page.status_code == 200:
            self.csrf = csrf_token_from(page.get_data(as_text=True))
        return response

    @property
    def headers(self) -> dict[str, str]:
        return {"X-CSRFToken": self.csrf}


def login_session(live_server, email: str) -> requests.Session:  # noqa: ANN001
    """A ``requests`` session logged in through the form of ``live_server``, with the CSRF header set."""
    session = requests.Session()
    page = session.get(f"{live_server.url}/login", timeout=10)
    images = session.post(f"{live_server.url}/login", timeout=10,
                          data={"email": email, "password": PASSWORD, "csrf_token": csrf_token_from(page.text)})
    assert images.status_code == 200 and images.url.endswith("/writer/images")
    session.headers["X-CSRFToken"] = csrf_token_from(images.text)
    return session
