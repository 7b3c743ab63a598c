"""Login and logout pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required, login_user, logout_user

from ..accounts.auth import check_password, end_login_session, find_user_by_email, start_login_session
from ..logs import event
from ..security import login_limits

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths, so ?next= cannot send a user to another site. Browsers read
    a backslash as a slash ("/\\evil.test" is "//evil.test"), and drop tabs and newlines, so
    those are refused too."""
    if (target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc
            and not any(c == "\\" or ord(c) < 32 for c in target)):
        return target
    return url_for("pages.images")


@bp.route("/login", methods=["GET", "POST"])
@login_limits
def login() -> ResponseReturnValue:
    if request.method == "POST":
        email = request.form.get("email", "")
        user = find_user_by_email(email)
        if user is None or not check_password(user, request.form.get("password", "")):
            event("login_failed", email=email[:100])
            flash("Wrong email or password.", "error")
            return render_template("auth/login.html", email=email), 401
        login_user(user)
        start_login_session(user)
        event("login", account=user.account_id, user=user.id)
        return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", email="")


@bp.post("/logout")
@login_required
def logout() -> ResponseReturnValue:
    end_login_session()
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
