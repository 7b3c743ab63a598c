"""The real processes and servers the tests run: ``worker.py`` (``WorkerProcess``), gunicorn as
``make run`` starts it (``WebProcess``) and the app on a threaded HTTP server in this process
(``LiveServer``). ``children_of`` finds a process's children, as ``WorkerProcess.kill`` needs for
RQ's work-horse."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests
from flask import Flask

from igny8.ops.commands import web_command, worker_command
from igny8.ops.redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent.parent


def children_of(pid: int) -> list[int]:
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


def descendants_of(pid: int) -> list[int]:
    """Children, their children and so on (from /proc)."""
    found, todo = [], [pid]
    while todo:
        for child in children_of(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


class WorkerProcess:
    """A real ``python worker.py`` process on the test Redis and database."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path, self.proc = env, log_path, None

    def start(self) -> WorkerProcess:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(worker_command(sys.executable), cwd=ROOT, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while b"worker_start" not in self.log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.log_path.read_text()}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        """SIGKILL the worker and its work-horses at once, as a machine crash would. RQ puts a
        horse in a process group of its own (``os.setpgrp``), so they are found by parent pid,
        through the worker loops of a ``WORKER_PROCESSES`` pool too."""
        if self.proc and self.proc.poll() is None:
            horses = descendants_of(self.proc.pid)
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


class WebProcess:
    """``gunicorn -k gevent … wsgi:app`` as ``make run`` starts it, on its own free port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path, self.log = log_path, open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        command = web_command(Path(sys.executable).parent, f"127.0.0.1:{self.port}")
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


def _closing(app: Flask) -> Callable[..., Iterator[bytes]]:
    """The app, with each response's ``close()`` called however its sending ends. werkzeug's
    development server drains the request after sending and skips ``close()`` when that read finds
    the client's reset (a browser dropping an image response): a sent file stayed open. A
    generator's ``finally`` runs when it is closed or collected; gunicorn needs none of this."""

    def wsgi(environ: dict, start_response: Callable) -> Iterator[bytes]:
        body = app(environ, start_response)
        try:
            yield from body
        finally:
            if hasattr(body, "close"):
                body.close()

    return wsgi


class LiveServer:
    """The app served by a real threaded HTTP server on 127.0.0.1 (for streams and browsers)."""

    def __init__(self, app: Flask) -> None:
        from werkzeug.serving import make_server

        self.app = app
        self.server = make_server("127.0.0.1", 0, _closing(app), threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, and end every open event stream of this process (a stream otherwise
        lingers until its next write, and could then reach for a database the test has closed)."""
        from igny8.streaming.hub import get_hub

        self.server.shutdown()
        get_hub(self.app.config["REDIS_URL"]).close_all()
        self.thread.join(10)
