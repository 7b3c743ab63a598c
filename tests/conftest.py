"""Fixtures: a real Redis server for the session, a real database per test (SQLite file, or the
PostgreSQL of ``DATABASE_URL``), the app, clients that log in, and a real RQ worker process."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from igny8 import create_app
from igny8.accounts.auth import create_user, issue_api_token
from igny8.extensions import db
from igny8.models import Account, User
from igny8.ops.redis_server import RedisServer, free_port
from igny8.redis_client import close_redis
from tests.provider_servers import fake_openai, fake_runware  # noqa: F401 - fixtures
from tests.url_servers import image_host  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def _database_url(tmp_path: Path) -> str:
    return os.environ.get("DATABASE_URL") or f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def app_config(tmp_path: Path, redis_server: RedisServer) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": _database_url(tmp_path),
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


class Accounts:
    """Makes accounts with a user and an API token; ``headers(user)`` for Bearer requests."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def create(self, name: str = "Acme", *, admin: bool = True, operator: bool = False) -> dict:
        with self.app.app_context():
            account = Account(name=name)
            db.session.add(account)
            email = f"{name.lower().replace(' ', '-')}@example.test"
            user = create_user(email, PASSWORD, account=account, is_admin=admin, is_operator=operator)
            token = issue_api_token(user)
            db.session.commit()
            return {"account_id": account.id, "user_id": user.id, "email": email, "token": token,
                    "headers": {"Authorization": f"Bearer {token}"}}


    def make_operator(self, who: dict) -> dict:
        """Grant ``who``'s user the operator role (platform staff), as ``grant-operator`` does."""
        with self.app.app_context():
            db.session.get(User, who["user_id"]).is_operator = True
            db.session.commit()
        return who


@pytest.fixture
def accounts(app: Flask) -> Accounts:
    return Accounts(app)


@pytest.fixture
def acme(accounts: Accounts) -> dict:
    return accounts.create("Acme")


@pytest.fixture
def globex(accounts: Accounts) -> dict:
    return accounts.create("Globex")


def csrf_token_from(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert match, "every page carries the csrf-token meta tag"
    return match.group(1)


class AuthActions:
    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.csrf = ""

    def login(self, email: str, password: str = PASSWORD):  # noqa: ANN201
        self.csrf = csrf_token_from(self.client.get("/login").get_data(as_text=True))
        response = self.client.post("/login", data={"email": email, "password": password, "csrf_token": self.csrf})
        page = self.client.get("/writer/images")
        if page.status_code == 200:
            self.csrf = csrf_token_from(page.get_data(as_text=True))
        return response

    @property
    def headers(self) -> dict[str, str]:
        return {"X-CSRFToken": self.csrf}


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def worker_env(app_config: dict) -> dict[str, str]:
    env = dict(os.environ)
    env.update(DATABASE_URL=app_config["SQLALCHEMY_DATABASE_URI"], REDIS_URL=app_config["REDIS_URL"],
               MEDIA_ROOT=app_config["MEDIA_ROOT"], SECRET_KEY=app_config["SECRET_KEY"],
               LOCAL_PROVIDER_LATENCY=str(app_config["LOCAL_PROVIDER_LATENCY"]),
               PROVIDER_TIMEOUT=str(app_config["PROVIDER_TIMEOUT"]), PYTHONUNBUFFERED="1")
    return env


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat_file.parent.name))
    return found


class WorkerProcess:
    """A real ``python worker.py`` process on the test Redis and database."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path, self.proc = env, log_path, None

    def start(self) -> WorkerProcess:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while b"worker_start" not in self.log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.log_path.read_text()}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        """SIGKILL the worker and its work-horse at once, as a machine crash would. RQ puts the
        horse in a process group of its own (``os.setpgrp``), so it is found by its parent pid."""
        if self.proc and self.proc.poll() is None:
            horses = _children(self.proc.pid)
            os.killpg(self.proc.pid, signal.SIGKILL)
            for pid in horses:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "log", None):
            self.log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


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


class WebProcess:
    """``gunicorn -k gevent … wsgi:app`` as ``make run`` starts it, on its own free port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path, self.log = log_path, open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        command = [str(Path(sys.executable).parent / "gunicorn"), "-k", "gevent", "--worker-connections", "2000",
                   "--no-control-socket", "-b", f"127.0.0.1:{self.port}", "--graceful-timeout", "5", "wsgi:app"]
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def health(self) -> dict | None:
        """The /healthz body once the process answers (any status), else None."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"gunicorn on {self.url} exited with {self.proc.returncode}:\n"
                               f"{self.log_path.read_text(errors='replace')[-4000:]}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=2).json()
        except requests.RequestException:
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


class LiveServer:
    """The app served by a real threaded HTTP server on 127.0.0.1 (for streams and browsers)."""

    def __init__(self, app: Flask) -> None:
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(10)


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    server = LiveServer(app).start()
    yield server
    server.stop()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05, message: str = "condition"):  # noqa: ANN001, ANN201
    """Poll ``predicate`` until it returns a truthy value (for cross-process outcomes in tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
