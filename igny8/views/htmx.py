"""One helper decides fragment versus full page for htmx requests."""

from __future__ import annotations

from typing import Any

from flask import make_response, render_template, request
from flask.wrappers import Response


def is_fragment_request() -> bool:
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"


def render_page(template: str, fragment: str, **context: Any) -> Response:
    """Render ``fragment`` alone for an htmx request, else the full ``template`` (which includes it)."""
    response = make_response(render_template(fragment if is_fragment_request() else template, **context))
    response.headers["Vary"] = "HX-Request"
    return response
