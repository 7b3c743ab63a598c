"""GET /api/v1/openapi.json: the OpenAPI document of the JSON API (public, like any API's docs)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from .openapi import document

bp = Blueprint("api_docs", __name__, url_prefix="/api/v1")


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(document())
