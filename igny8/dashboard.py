"""rq-dashboard mounted at /rq, for admins only.

rq-dashboard has no authentication and its buttons post without CSRF tokens (one of them even
accepts GET), so it gets its own guard: a logged-in admin of this app, state changes by POST
only, and only from a page of this same site (Origin/Referer). The session cookie is SameSite=Lax,
so another site cannot make a browser post with it in the first place.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import rq_dashboard
from flask import Flask, abort, redirect, request, url_for
from flask_login import current_user
from rq_dashboard.web import setup_rq_connection

URL_PREFIX = "/rq"


def _same_origin() -> bool:
    source = request.headers.get("Origin") or request.headers.get("Referer") or ""
    return urlsplit(source).netloc == request.host


def _guard():  # noqa: ANN202
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if not current_user.is_admin:
        abort(403, description="The queue dashboard is for administrators.")
    changes_state = request.method != "GET" or "/requeue/" in request.path
    if changes_state and (request.method == "GET" or not _same_origin()):
        abort(403, description="Queue actions must come from the dashboard itself.")
    return None


def register_dashboard(app: Flask) -> None:
    app.config.setdefault("RQ_DASHBOARD_REDIS_URL", app.config["REDIS_URL"])
    app.config.setdefault("RQ_DASHBOARD_POLL_INTERVAL", 2500)
    setup_rq_connection(app)
    if _guard not in rq_dashboard.blueprint.before_request_funcs.get(None, []):
        rq_dashboard.blueprint.before_request(_guard)  # a module-level blueprint: add the guard once
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)
