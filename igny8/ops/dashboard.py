"""rq-dashboard mounted at /rq, for operators (platform staff) only: it shows, requeues and
deletes every account's jobs, so an account admin is not enough.

rq-dashboard has no authentication and its buttons post without CSRF tokens (one of them even
accepts GET), so it gets its own guard: a logged-in operator of this app, state changes by POST
only, and only from a page of this same site (Origin/Referer). The session cookie is SameSite=Lax,
so another site cannot make a browser post with it in the first place.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import rq_dashboard
from flask import Flask, abort, current_app, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq_dashboard.web import setup_rq_connection

URL_PREFIX = "/rq"
# What rq-dashboard's URLs may name; anything else it would turn into a 500 (an IndexError on the
# instance list, a ZeroDivisionError on per_page 0, an unbound variable for an unknown registry).
REGISTRIES = ("queued", "failed", "deferred", "scheduled", "started", "finished", "canceled")
ORDERS = ("asc", "desc")
MAX_PER_PAGE = 100


def _same_origin() -> bool:
    source = request.headers.get("Origin") or request.headers.get("Referer") or ""
    return urlsplit(source).netloc == request.host


def _guard() -> ResponseReturnValue:
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if not current_user.is_operator:
        abort(403, description="The queue dashboard is for platform operators; your batches are on the Images page.")
    changes_state = request.method != "GET" or "/requeue/" in request.path
    if changes_state and (request.method == "GET" or not _same_origin()):
        abort(403, description="Queue actions must come from the dashboard itself.")
    _check_view_args(request.view_args or {})
    return None


def _check_view_args(args: dict) -> None:
    """404 for a dashboard URL that names no instance, registry, order, page size or queue."""
    instances = current_app.config["RQ_DASHBOARD_REDIS_URL"]
    count = len(instances) if isinstance(instances, list | tuple) else 1
    if not 0 <= args.get("instance_number", 0) < count:
        abort(404, description=f"No Redis instance {args['instance_number']}; the dashboard has {count}.")
    if args.get("registry_name", "queued") not in REGISTRIES:
        abort(404, description=f"No registry {args['registry_name']!r}; use one of: {', '.join(REGISTRIES)}.")
    if args.get("order", "asc") not in ORDERS:
        abort(404, description="The order is asc or desc.")
    if not 1 <= _number(args.get("per_page", 1)) <= MAX_PER_PAGE:
        abort(404, description=f"Show 1 to {MAX_PER_PAGE} jobs per page.")
    if not 1 <= _number(args.get("page", 1)) <= 10**6:
        abort(404, description="Pages are numbered from 1.")
    if "queue_name" in args and request.method != "GET":  # list views of an unknown queue are just empty
        known = {queue.name for queue in Queue.all(connection=current_app.redis_conn)}
        if args["queue_name"] not in known:
            abort(404, description=f"No queue {args['queue_name']!r}.")


def _number(value: int | str) -> int:
    """A page or page size from the URL (the JSON routes take them as text); -1 when not a number."""
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else -1


def _job_error(exc: Exception) -> ResponseReturnValue:
    """A job that expired or was deleted (404), or an action its state does not allow (409):
    rq-dashboard lets both escape as a 500."""
    status, message = ((404, "No such job: it expired or was deleted.") if isinstance(exc, NoSuchJobError)
                       else (409, "This action does not apply to the job in its current state."))
    if request.method != "GET" or request.path.endswith(".json"):
        return jsonify(success=False, error=message), status
    return render_template("error.html", code=status, message=message), status


def register_dashboard(app: Flask) -> None:
    app.config.setdefault("RQ_DASHBOARD_REDIS_URL", app.config["REDIS_URL"])
    app.config.setdefault("RQ_DASHBOARD_POLL_INTERVAL", 2500)
    setup_rq_connection(app)
    hooks = rq_dashboard.blueprint.before_request_funcs.setdefault(None, [])
    if _guard not in hooks:  # a module-level blueprint: add the guard once, before the package's own
        hooks.insert(0, _guard)  # hooks (which open a Redis connection and index the instance list)
        rq_dashboard.blueprint.register_error_handler(NoSuchJobError, _job_error)
        rq_dashboard.blueprint.register_error_handler(InvalidJobOperation, _job_error)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)
