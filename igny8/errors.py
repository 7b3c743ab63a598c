"""One JSON error shape for the API, friendly pages for browsers."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from .content.articles import ContentError
from .content.errors import ConflictError
from .integrations.settings import SettingsError
from .spend.budget import BudgetExceeded
from .tasks.requests import QueueError


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def api_error(status: int, error: str, errors: dict[str, str] | None = None) -> ResponseReturnValue:
    body = {"success": False, "error": error}
    if errors:
        body["errors"] = errors
    return jsonify(body), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> ResponseReturnValue:
        message = "The form expired or the CSRF token is missing; reload the page and try again."
        if wants_json():
            return api_error(400, message)
        return render_template("error.html", code=400, message=message), 400

    @app.errorhandler(SettingsError)
    @app.errorhandler(ContentError)
    def _invalid(exc: SettingsError | ContentError) -> ResponseReturnValue:
        return api_error(400, "Some fields are not valid.", exc.errors)

    @app.errorhandler(QueueError)
    @app.errorhandler(ConflictError)
    def _not_queued(exc: QueueError | ConflictError) -> ResponseReturnValue:
        return api_error(exc.status, exc.message)

    @app.errorhandler(BudgetExceeded)
    def _over_budget(exc: BudgetExceeded) -> ResponseReturnValue:
        return jsonify(success=False, error=exc.message, estimated_cost=exc.estimated, budget=exc.budget.to_dict()), 402

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> ResponseReturnValue:
        message = exc.description or exc.name
        if wants_json():
            response, status = api_error(exc.code or 500, message)
            # Keep the headers the status needs (Allow on 405, Retry-After on 429...), not the HTML type.
            response.headers.extend((k, v) for k, v in exc.get_headers() if k.lower() != "content-type")
            return response, status
        return render_template("error.html", code=exc.code, message=message), exc.code or 500
