"""Fixtures: a real Redis server for the session, a real database per test (SQLite file, or the
PostgreSQL of ``DATABASE_URL``), the app, accounts, clients that log in, writers, a real RQ worker
process and the app on a real HTTP server. What they are built from lives in ``tests/support``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from igny8 import create_app
from igny8.extensions import db
from igny8.ops.redis_server import RedisServer
from igny8.redis_client import close_redis
from tests.support.accounts import Accounts, AuthActions
from tests.support.processes import LiveServer, WorkerProcess
from tests.support.writer import Writer

# Fixture modules: fake_openai and fake_runware (provider doubles), image_host (where image URLs point),
# webhook_receiver (an account's webhook endpoint), browser and page (Chromium, for the browser tests).
pytest_plugins = ["tests.support.provider_servers", "tests.support.url_servers", "tests.support.webhook_receiver",
                  "tests.support.browser"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def app_config(tmp_path: Path, redis_server: RedisServer) -> dict:
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{tmp_path / 'test.db'}"
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_server.url,
        "MEDIA_ROOT": str(tmp_path / "media"),
        "LOCAL_PROVIDER_LATENCY": 0.0,
        "PROVIDER_TIMEOUT": 5.0,
    }


@pytest.fixture
def app(app_config: dict) -> Iterator[Flask]:
    app = create_app(app_config)
    with app.app_context():
        if db.engine.url.get_backend_name() == "postgresql":
            db.drop_all()
        db.create_all()
        app.extensions["redis"].flushdb()
    yield app
    with app.app_context():
        db.session.remove()
        if db.engine.url.get_backend_name() == "postgresql":
            db.drop_all()
        db.engine.dispose()
    close_redis(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):  # noqa: ANN201
    return app.test_cli_runner()


@pytest.fixture
def redis(app: Flask) -> Redis:
    return app.extensions["redis"]


# ---------------------------------------------------------------- accounts, logins, writers

@pytest.fixture
def accounts(app: Flask) -> Accounts:
    return Accounts(app)


@pytest.fixture
def acme(accounts: Accounts) -> dict:
    return accounts.create("Acme")


@pytest.fixture
def globex(accounts: Accounts) -> dict:
    return accounts.create("Globex")


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def writer(client: FlaskClient, acme: dict) -> Writer:
    """Acme's writer (an account admin) at the test client."""
    return Writer(client, acme)


@pytest.fixture
def writer_for(client: FlaskClient) -> Callable[[dict], Writer]:
    """``writer_for(globex)``: the writer of another account, at the same test client."""
    return lambda who: Writer(client, who)


# ---------------------------------------------------------------- processes

@pytest.fixture
def worker_env(app_config: dict) -> dict[str, str]:
    env = dict(os.environ)
    env.update(DATABASE_URL=app_config["SQLALCHEMY_DATABASE_URI"], REDIS_URL=app_config["REDIS_URL"],
               MEDIA_ROOT=app_config["MEDIA_ROOT"], SECRET_KEY=app_config["SECRET_KEY"],
               LOCAL_PROVIDER_LATENCY=str(app_config["LOCAL_PROVIDER_LATENCY"]),
               PROVIDER_TIMEOUT=str(app_config["PROVIDER_TIMEOUT"]), PYTHONUNBUFFERED="1")
    return env


@pytest.fixture
def start_worker(worker_env: dict[str, str], tmp_path: Path):  # noqa: ANN201
    """Call to start a worker (optionally with extra env); all are stopped after the test."""
    started: list[WorkerProcess] = []

    def start(**extra_env: str) -> WorkerProcess:
        env = {**worker_env, **extra_env}
        worker = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log").start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def worker(start_worker):  # noqa: ANN001, ANN201
    return start_worker()


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    server = LiveServer(app).start()
    yield server
    server.stop()
