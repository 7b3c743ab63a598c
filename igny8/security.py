"""Browser-facing defences: security headers with a strict Content-Security-Policy, and the
login rate limit (Flask-Limiter, counters in Redis so every web process shares them).

The app's pages load only our own files (htmx and its SSE extension are vendored in static/),
so the policy allows nothing else: no inline script or style, no other origin. rq-dashboard's
pages (operators only) compile their client-side templates from strings (underscore's
``_.template``), so /rq also allows 'unsafe-eval' for scripts, and style attributes (its markup
has a few); its one inline script is allowed by a per-response nonce (our frame for its pages,
templates/rq_dashboard/base.html), never by 'unsafe-inline', so an event handler injected into
a job's text cannot run there.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from flask import Flask, Response, current_app, flash, g, render_template, request
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

from .logs import event
from .ops.dashboard import URL_PREFIX as DASHBOARD_PREFIX

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
# {nonce} is this response's csp_nonce(); style-src-attr allows style="" attributes, not <style>.
DASHBOARD_CSP = CSP.replace("script-src 'self'", "script-src 'self' 'nonce-{nonce}' 'unsafe-eval'").replace(
    "style-src 'self';", "style-src 'self'; style-src-attr 'unsafe-inline';")
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
# Per address and email (guessing one account's password), and per address (trying many).
LOGIN_LIMIT_PER_EMAIL = "10 per minute"
LOGIN_LIMIT_PER_ADDRESS = "60 per minute"

limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True,
                  strategy="moving-window")


def _address_and_email() -> str:
    return f"{get_remote_address()}|{request.form.get('email', '').strip().lower()[:200]}"


_LIMITED_VIEWS: set[Callable[..., ResponseReturnValue]] = set()


def login_limits(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
    """Decorates the login view: POSTs only (showing the form is never limited)."""
    view = limiter.limit(LOGIN_LIMIT_PER_EMAIL, key_func=_address_and_email, methods=["POST"])(view)
    view = limiter.limit(LOGIN_LIMIT_PER_ADDRESS, methods=["POST"])(view)
    _LIMITED_VIEWS.add(view)
    return view


@limiter.request_filter
def _not_limited() -> bool:
    """Every request but a POST to a limited view skips the limiter at once: its per-request work
    of resolving limits came to 7 % of a stream opening's CPU, for no limit at all."""
    return request.method != "POST" or current_app.view_functions.get(request.endpoint or "") not in _LIMITED_VIEWS


def csp_nonce() -> str:
    """This response's nonce for the inline script of a dashboard page (made on first use)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def _security_headers(response: Response) -> Response:
    dashboard = request.path.startswith(DASHBOARD_PREFIX + "/")
    response.headers.setdefault("Content-Security-Policy",
                                DASHBOARD_CSP.format(nonce=csp_nonce()) if dashboard else CSP)
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:  # behind a proxy, its X-Forwarded-Proto (ops/proxy.py), never the client's
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response


def _too_many_logins(exc: RateLimitExceeded) -> ResponseReturnValue:
    event("login_rate_limited", level=30, limit=str(exc.limit.limit) if exc.limit else "")
    if request.path.startswith("/api/"):
        return {"error": f"Too many requests: {exc.description}. Try again in a minute."}, 429
    flash("Too many login attempts. Wait a minute, then try again.", "error")
    return render_template("auth/login.html", email=request.form.get("email", "")), 429


def register_security(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"])
    # Redis down must not lock everybody out: the limit is skipped (logged) until it is back.
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    limiter.init_app(app)
    app.after_request(_security_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.register_error_handler(RateLimitExceeded, _too_many_logins)
