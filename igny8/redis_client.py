"""The Redis connection of a process: one pool, shared by web requests, jobs and streams."""

from __future__ import annotations

from flask import Flask, current_app
from redis import BlockingConnectionPool, Redis

# Enough for a worker's threads and a web process's requests; a burst beyond it waits for a free
# connection instead of failing (streams do not hold one: they share the process's hub).
POOL_SIZE = 50


def init_redis(app: Flask) -> None:
    pool = BlockingConnectionPool.from_url(app.config["REDIS_URL"], max_connections=POOL_SIZE, timeout=20,
                                           decode_responses=True, health_check_interval=30,
                                           socket_connect_timeout=5, socket_timeout=30)
    app.extensions["redis"] = Redis(connection_pool=pool)


def get_rq_redis() -> Redis:
    """RQ stores pickled bytes, so it needs a client that does not decode responses."""
    if "rq_redis" not in current_app.extensions:
        pool = BlockingConnectionPool.from_url(current_app.config["REDIS_URL"], max_connections=POOL_SIZE,
                                               timeout=20, socket_connect_timeout=5, health_check_interval=30)
        current_app.extensions["rq_redis"] = Redis(connection_pool=pool)
    return current_app.extensions["rq_redis"]


def close_redis(app: Flask) -> None:
    """Close this app's Redis connections (at shutdown, and between tests: no socket is left
    for the garbage collector, and a stopped test Redis leaves nothing half-open)."""
    for name in ("redis", "rq_redis"):
        client = app.extensions.get(name)
        if client is not None:
            client.connection_pool.disconnect()


def get_redis() -> Redis:
    return current_app.extensions["redis"]


def raw_redis_url() -> str:
    return current_app.config["REDIS_URL"]
