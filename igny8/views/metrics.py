"""GET /metrics: Prometheus's text format (ops/metrics.py), for operators (platform staff) or a
scraper holding ``Authorization: Bearer $METRICS_TOKEN``. It shows every account's figures, so
account users and admins get 403, anonymous callers 401."""

from __future__ import annotations

from flask import Blueprint, Response, abort
from flask_login import current_user
from prometheus_client import CONTENT_TYPE_LATEST

from ..accounts.auth import metrics_token_matches
from ..ops.metrics import exposition
from ..redis_client import get_rq_redis

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    if not metrics_token_matches():
        if not current_user.is_authenticated:
            abort(401, description="Log in as an operator or send Authorization: Bearer $METRICS_TOKEN.")
        if not current_user.is_operator:
            abort(403, description="Metrics show every account's figures: operators only.")
    return Response(exposition(get_rq_redis()), mimetype=CONTENT_TYPE_LATEST)
