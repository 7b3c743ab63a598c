"""Shared plumbing of the benchmarks in ``bench/``: a private Redis, a temporary database and
media folder, the app, accounts with API tokens, gunicorn and worker processes that are always
stopped (also on Ctrl-C, SIGTERM or an error), an SSE client on raw asyncio sockets
(``sse_client.py``, re-exported here), and the figures (percentiles, tables, verdicts).
``fanout.py`` is the runner side of the two stream fan-out benchmarks.

This package lives in a folder so that ``make bench`` (which runs ``bench/*.py``) does not run it.
Scripts run as ``.venv/bin/python bench/<name>.py``: their folder is on ``sys.path``, so
``import harness`` works, and importing it puts the repository root on ``sys.path`` for ``igny8``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

from flask import Flask
from redis import Redis

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from igny8 import create_app  # noqa: E402
from igny8.accounts.auth import create_user, issue_api_token  # noqa: E402
from igny8.extensions import db  # noqa: E402
from igny8.models import Account  # noqa: E402
from igny8.ops.redis_server import RedisServer, free_port  # noqa: E402

from .sse_client import HOST, open_stream, sent_at, sse_events  # noqa: E402, F401 - the client's pieces

BIN = Path(sys.executable).parent  # the virtualenv's bin/: gunicorn lives next to python
PASSWORD = "bench-password-1"
SECRET_KEY = "bench-secret"


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(143)  # unwinds every ``finally``: children and Redis are stopped


def raise_fd_limit(nofile: int | None = None) -> None:
    """Raise this process's soft limit of open files (to ``nofile``, or the hard limit). Children
    inherit it: the private Redis needs one descriptor per client connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if nofile is None else min(nofile, hard)
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class Child:
    """A subprocess in its own session (a Ctrl-C reaches only us), its output in a log file."""

    def __init__(self, name: str, command: Sequence[str], env: dict[str, str], log_path: Path,
                 nofile: int | None = None) -> None:
        self.name, self.log_path = name, log_path
        self.log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()

        def set_fd_limit() -> None:
            if nofile:
                _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile, hard), hard))

        self.proc = subprocess.Popen(list(command), cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=set_fd_limit)

    def wait_for(self, ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.name} did not get ready ({what}):\n{tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM to the whole process group, 10 s, then SIGKILL. Idempotent."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        self.log.close()


class Web(Child):
    """``gunicorn -k gevent -w 1`` serving ``wsgi:app``, as the product runs it. ``gunicorn``,
    ``app`` and ``chdir`` serve another app the same way (a peer, from its own virtualenv)."""

    def __init__(self, env: dict[str, str], log_path: Path, nofile: int = 8192, *, gunicorn: Path | None = None,
                 app: str | None = None, chdir: Path | None = None, name: str = "gunicorn") -> None:
        self.port = free_port()
        command = [str(gunicorn or BIN / "gunicorn"), "-k", "gevent", "--worker-connections", "4000",
                   "--no-control-socket", "-w", "1", "-b", f"{HOST}:{self.port}", "--graceful-timeout", "5",
                   *(["--chdir", str(chdir)] if chdir else []),
                   app or env.get("BENCH_WSGI_APP", "wsgi:app")]  # another module: to measure a candidate fix
        super().__init__(name, command, env, log_path, nofile)

    def answers(self) -> bool:
        """An HTTP answer from the app (the master binds the port before its worker has booted)."""
        try:
            with socket.create_connection((HOST, self.port), timeout=5) as sock:
                sock.sendall(f"GET /healthz HTTP/1.0\r\nHost: {HOST}\r\n\r\n".encode())
                return sock.recv(16).startswith(b"HTTP/")
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def worker_pid(self) -> int:
        """The pid of the gevent worker (not the gunicorn master): it holds the streams."""
        import psutil

        children = psutil.Process(self.proc.pid).children()
        if len(children) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {len(children)}")
        return int(children[0].pid)


class Stack:
    """A private Redis, a temporary folder (SQLite database, media, logs) or the database of
    ``DATABASE_URL``, and the app with its schema. Every process started through it is stopped
    on exit, in reverse order, then Redis, then the folder is removed.

    With ``DATABASE_URL`` set, its tables are created and dropped at the end; a database that
    already has our tables is refused unless ``BENCH_RESET_DB=1`` (a benchmark never wipes data
    by surprise)."""

    def __init__(self, **config: Any) -> None:
        self.extra_config = config
        self.children: list[Child] = []

    def __enter__(self) -> Stack:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        self.tmp = Path(tempfile.mkdtemp(prefix="igny8-bench-"))
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        raise_fd_limit()  # Redis inherits it: thousands of client connections in the fan-out benchmarks
        self.redis_server = RedisServer(data_dir=self.tmp / "redis").start()
        self.external_db = os.environ.get("DATABASE_URL") or None
        self.database_url = self.external_db or f"sqlite:///{self.tmp / 'bench.db'}"
        config: dict[str, Any] = {"SECRET_KEY": SECRET_KEY, "REDIS_URL": self.redis_server.url,
                                  "MEDIA_ROOT": str(self.tmp / "media"), "LOCAL_PROVIDER_LATENCY": 0.0}
        if not self.external_db:
            config["SQLALCHEMY_DATABASE_URI"] = self.database_url
        self.app: Flask = create_app({**config, **self.extra_config})
        logging.getLogger("igny8").setLevel(logging.WARNING)  # no per-task log lines in the figures
        with self.app.app_context():
            if self.external_db and db.inspect(db.engine).has_table("account"):
                if os.environ.get("BENCH_RESET_DB") != "1":
                    raise SystemExit("DATABASE_URL already holds igny8 tables; set BENCH_RESET_DB=1 to drop them.")
                db.drop_all()
            db.create_all()
            self.owns_schema = bool(self.external_db)  # dropped on exit; never a schema we did not make
        self.redis = Redis.from_url(self.redis_server.url, decode_responses=True)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for child in reversed(self.children):
            child.stop()
        app = getattr(self, "app", None)
        if app is not None:
            with app.app_context():
                db.session.remove()
                if getattr(self, "owns_schema", False):
                    db.drop_all()
                db.engine.dispose()
        server = getattr(self, "redis_server", None)
        if server is not None:
            server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of our web and worker processes."""
        return {**os.environ, "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_server.url,
                "MEDIA_ROOT": str(self.tmp / "media"), "SECRET_KEY": SECRET_KEY, "PYTHONUNBUFFERED": "1",
                "LOCAL_PROVIDER_LATENCY": "0", **extra}

    def web(self, nofile: int = 8192, *, gunicorn: Path | None = None, app: str | None = None,
            chdir: Path | None = None, name: str = "gunicorn", **env: str) -> Web:
        web = Web(self.env(**env), self.tmp / f"web-{len(self.children)}.log", nofile, gunicorn=gunicorn, app=app,
                  chdir=chdir, name=name)
        self.children.append(web)  # before waiting: a web that never answers is stopped all the same
        web.wait_for(web.answers, f"an HTTP answer on port {web.port}")
        return web

    def worker(self, **env: str) -> Child:
        log_path = self.tmp / f"worker-{len(self.children)}.log"
        env = self.env(**env)  # BENCH_WORKER_SCRIPT: another script, to measure a candidate fix
        child = Child("worker", [sys.executable, env.get("BENCH_WORKER_SCRIPT", "worker.py")], env, log_path)
        self.children.append(child)
        child.wait_for(lambda: b"worker_start" in log_path.read_bytes(), "worker_start in its log")
        return child

    def account(self, name: str) -> dict[str, Any]:
        """A new account with an admin user and an API token."""
        with self.app.app_context():
            account = Account(name=name)
            db.session.add(account)
            email = f"{name.lower().replace(' ', '-')}@bench.test"
            user = create_user(email, PASSWORD, account=account, is_admin=True)
            token = issue_api_token(user)
            db.session.commit()
            return {"account_id": account.id, "email": email, "token": token,
                    "headers": {"Authorization": f"Bearer {token}"}}


def queue_tasks(stack: Stack, account_id: int, count: int) -> list[tuple[str, dict[str, Any]]]:
    """``count`` one-image tasks queued as the API queues them (``tasks.service.queue_task``: a task
    row, its progress hashes, an RQ job). With no worker running they stay PENDING, and alive:
    the reconciler only fails a PENDING task whose job is gone. Returns (task id, queue item).

    The articles are created first, ``ARTICLES_PER_COMMIT`` to a transaction (an article per
    commit made 2,000 tasks take ~12 s); each task is then queued on its own, as a request does."""
    from igny8.content.articles import create_article, validate_article
    from igny8.tasks.service import queue_task

    tasks = []
    with stack.app.app_context():
        content_ids: list[int] = []
        for start in range(0, count, ARTICLES_PER_COMMIT):
            for n in range(start, min(count, start + ARTICLES_PER_COMMIT)):
                clean = validate_article({"title": f"Article {n}", "featured_prompt": "A red fox in the snow"})
                content_ids.append(create_article(account_id, clean).id)
            db.session.commit()
        for content_id in content_ids:
            batch = queue_task(account_id, {"content_id": content_id})
            tasks.append((batch.task.id, dataclasses.replace(batch.items[0])))
    return tasks


ARTICLES_PER_COMMIT = 500


# ---------------------------------------------------------------- figures

def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}\n{line}")
    for index, row in enumerate(cells):
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if index == 0:
            print(line)


def verdict(target: str, met: bool, figure: str) -> bool:
    print(f"{'MET    ' if met else 'NOT MET'}  {target}: {figure}")
    return met


def exit_code(results: Sequence[bool]) -> int:
    """0 once the figures are printed; 1 for a missed target only with ``BENCH_STRICT=1`` (CI),
    so ``make bench`` runs every benchmark even when one target is missed."""
    return 1 if os.environ.get("BENCH_STRICT") == "1" and not all(results) else 0
