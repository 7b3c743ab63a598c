"""Helpers shared by the JSON API blueprints."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, jsonify, request
from flask_login import current_user

from ..models import MAX_DB_ID


def api_login_required(view: Callable) -> Callable:
    """Like ``login_required`` but always answers 401 JSON (never a redirect)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return jsonify(success=False, error="Authentication required: log in or send a valid Bearer token."), 401
        return view(*args, **kwargs)

    return wrapper


def json_body() -> Any:
    """The parsed JSON body; 400 with a clear message when it is missing or malformed."""
    if not request.is_json:
        abort(400, description="Send a JSON body with Content-Type: application/json.")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # very deep nesting ("[[[[..."): json raises this, not ValueError
        data = None
    if data is None:
        abort(400, description="The request body is not valid JSON.")
    return data


def int_arg(name: str) -> int | None:
    """A query argument that is a database id (or 0), None when absent or empty; 400 otherwise."""
    value = request.args.get(name)
    if value in (None, ""):
        return None
    # isascii: str.isdigit() also accepts "²", which int() refuses
    if not (value.isascii() and value.isdigit()) or len(value) > 10 or int(value) > MAX_DB_ID:
        abort(400, description=f"{name} must be a whole number from 0 to {MAX_DB_ID}.")
    return int(value)
