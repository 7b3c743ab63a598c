"""GET /healthz: database, Redis, live workers and queue length; 503 when a part is down."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError
from rq import Queue, Worker
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db
from ..redis_client import get_rq_redis
from ..tasks.jobs import IMAGES_QUEUE

bp = Blueprint("health", __name__)


def _database() -> str:
    try:
        db.session.execute(text("SELECT 1"))
        return "ok"
    except SQLAlchemyError as exc:
        db.session.rollback()
        return f"down: {exc.__class__.__name__}"


def _redis() -> tuple[str, int | None, int | None]:
    connection = get_rq_redis()
    try:
        connection.ping()
        return "ok", Worker.count(connection=connection), Queue(IMAGES_QUEUE, connection=connection).count
    except RedisError as exc:
        return f"down: {exc.__class__.__name__}", None, None


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    database = _database()
    redis, workers, queued = _redis()
    healthy = database == "ok" and redis == "ok" and bool(workers)
    body: dict[str, Any] = {"status": "ok" if healthy else "unavailable", "database": database, "redis": redis,
                            "workers": workers, "queue_length": queued}
    if redis == "ok" and not workers:
        body["problem"] = "No worker is running: start `python worker.py`."
    return jsonify(body), 200 if healthy else 503
