"""Who is calling: session login (Flask-Login), Bearer API tokens, CSRF, account scoping.

A request with an ``Authorization: Bearer`` header is authenticated by that token alone and is
exempt from CSRF (a browser never adds that header on its own, so cross-site forgery cannot use it).
Every other state-changing request must carry the CSRF token, as a form field or ``X-CSRFToken``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable

from flask import Flask, abort, current_app, g, jsonify, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from redis.exceptions import RedisError
from sqlalchemy import bindparam, select
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import csrf, db, login_manager
from ..models import Account, User, utcnow
from .sessions import CookieSessions

TOKEN_PREFIX = "igny8_"
SESSION_KEY = "session_key"  # the per-login id in the Flask session; logout marks it revoked in Redis
log = logging.getLogger(__name__)


def hash_password(password: str) -> str:
    return generate_password_hash(password)  # scrypt, werkzeug's default


def check_password(user: User, password: str) -> bool:
    return check_password_hash(user.password_hash, password)


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_api_token(user: User) -> str:
    """Create a new token for ``user`` (replacing any old one); the caller commits.
    Returns the plain token, which is never stored and can only be shown this once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user.api_token_hash = _token_digest(token)
    user.api_token_hint = token[-4:]
    user.api_token_created_at = utcnow()
    return token


def revoke_api_token(user: User) -> None:
    user.api_token_hash = None
    user.api_token_hint = None
    user.api_token_created_at = None


def create_user(email: str, password: str, *, account: Account, is_admin: bool = False,
                is_operator: bool = False) -> User:
    user = User(email=email.strip().lower(), password_hash=hash_password(password),
                account=account, is_admin=is_admin, is_operator=is_operator)
    db.session.add(user)
    return user


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).filter_by(email=email.strip().lower()))


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    """The session's user, unless that login was ended by a logout (a copy of the cookie kept
    from before the logout opens nothing)."""
    if not user_id.isdigit() or session_revoked(session.get(SESSION_KEY)):
        return None
    return db.session.get(User, int(user_id))


def metrics_token_matches() -> bool:
    """Whether the request's Bearer token is the configured METRICS_TOKEN (compared in constant time)."""
    expected, given = current_app.config.get("METRICS_TOKEN") or "", bearer_token() or ""
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


# Built once, with the digest bound per call: SQLAlchemy keeps a statement's cache key on the
# object, so a request skips building and hashing the query (~60 us of every request and stream
# opening that carries a token).
_USER_BY_TOKEN = select(User).where(User.api_token_hash == bindparam("digest"))
_USER_ID_BY_TOKEN = select(User.id).where(User.api_token_hash == bindparam("digest"))


def user_for_token(token: str) -> User | None:
    return db.session.scalar(_USER_BY_TOKEN, {"digest": _token_digest(token)})


@login_manager.unauthorized_handler
def _unauthorized() -> ResponseReturnValue:
    if request.path.startswith("/api/"):
        return jsonify(success=False, error="Authentication required: log in or send a valid Bearer token."), 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def current_account_id() -> int:
    """The caller's account; every query of customer data filters on it."""
    if not current_user.is_authenticated:
        abort(401)
    return current_user.account_id


def task_origin() -> dict[str, int | str]:
    """Who starts a task and from where: ``api`` with a Bearer token, ``web`` from a page's session."""
    return {"user_id": current_user.id, "source": "api" if bearer_token() is not None else "web"}


def require_account_admin() -> None:
    """403 unless the caller administers its account: settings and provider keys are the
    account's, and a writer must not swap the key the whole team pays with."""
    if not current_user.is_authenticated:
        abort(401)
    if not current_user.is_admin:
        abort(403, description="Only an admin of this account can change its settings and provider keys.")


def register_auth(app: Flask) -> None:
    app.session_interface = CookieSessions()
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"
    csrf.init_app(app)

    @app.before_request
    def _bearer_or_csrf() -> ResponseReturnValue:
        token = bearer_token()
        if token is None:
            if request.blueprint != "rq_dashboard":  # guarded by Origin checks in dashboard.py
                csrf.protect()
            return None
        # The token decides alone: a cookie session sent alongside is ignored, so a request is
        # either token-authenticated (no CSRF possible) or cookie-authenticated (CSRF checked).
        if request.endpoint == "metrics.metrics" and metrics_token_matches():
            return None  # the scraper's own token: no user
        user = user_for_token(token)
        if user is None:
            return jsonify(success=False, error="Invalid or revoked API token."), 401
        g._login_user = user  # Flask-Login's per-request slot for current_user
        return None


# ---------------------------------------------------------------- per-login markers and stream re-checks
# Pages rely on Flask-Login alone. A stream outlives its request by minutes, so it re-checks what
# authenticated it (stream_credential, captured in the view) and ends when that is gone: a revoked
# or replaced API token, or a session that logged out (its marker is deleted from Redis on logout).

def _revoked_key(key: str) -> str:
    return f"igny8:session:revoked:{key}"


def start_login_session(user: User) -> None:
    """After login_user(): a random id for this login in the (signed) session cookie."""
    session[SESSION_KEY] = secrets.token_urlsafe(24)


def end_login_session() -> None:
    """On logout (before logout_user()): this login is marked revoked in Redis for the session
    lifetime, so its open streams end and a copy of its cookie no longer logs anyone in.

    A revocation is recorded (not a live login): if Redis loses its keys (a restart without
    persistence), open streams and sessions carry on instead of all ending at once."""
    from ..redis_client import get_redis

    key = session.pop(SESSION_KEY, None)
    if key:
        ttl = int(current_app.permanent_session_lifetime.total_seconds())
        try:
            get_redis().set(_revoked_key(key), "1", ex=max(ttl, 60))
        except RedisError as exc:
            log.warning("session revocation not stored: %s", exc)


def session_revoked(key: str | None) -> bool:
    """True when the login ``key`` was ended by a logout (False while Redis cannot say)."""
    if not key:
        return False
    from ..redis_client import get_redis

    try:
        return bool(get_redis().exists(_revoked_key(key)))
    except RedisError:
        return False


def stream_credential() -> tuple[str, ...]:
    """What authenticated this request, for the stream to re-check later (read before streaming:
    the generator never touches the request or session)."""
    token = bearer_token()
    if token is not None:
        return ("token", _token_digest(token))
    if not session.get(SESSION_KEY):  # a session from before login ids existed: give it one now
        start_login_session(current_user)
    return ("session", str(current_user.id), session[SESSION_KEY])


SHARED_CHECKS_MAX = 10_000  # credentials remembered per process before the memory is cleared


def credential_check(credential: tuple[str, ...]) -> Callable[[], bool]:
    """A function (run in an app context) telling whether ``credential`` still grants access.
    The streams of one process share an answer given in the last ``STREAM_AUTH_RECHECK_SECONDS``
    / 15 seconds (1 s by default): an API client following 2,000 tasks with one token asks the
    database once a second, not 130 times (at 2,000 streams those queries were a seventh of the
    process's CPU), and a revocation is still noticed within the re-check interval and a second."""
    def still_valid() -> bool:
        shared = current_app.extensions.setdefault("igny8_credential_checks", {})
        fresh_for = float(current_app.config["STREAM_AUTH_RECHECK_SECONDS"]) / 15
        now = time.monotonic()
        known = shared.get(credential)
        if known is not None and now - known[1] < fresh_for:
            return known[0]
        if len(shared) >= SHARED_CHECKS_MAX:
            shared.clear()
        valid = _still_valid(credential)
        shared[credential] = (valid, now)
        return valid

    return still_valid


def _still_valid(credential: tuple[str, ...]) -> bool:
    """One check of ``credential`` (the database, and Redis for a login session)."""
    try:
        if credential[0] == "token":
            return db.session.scalar(_USER_ID_BY_TOKEN, {"digest": credential[1]}) is not None
        _, user_id, key = credential
        return not session_revoked(key) and db.session.get(User, int(user_id)) is not None
    finally:
        db.session.close()  # streams hold no database connection between checks
