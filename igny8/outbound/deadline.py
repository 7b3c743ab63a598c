"""One deadline for a whole outside HTTP call: connect, request, stream and download together.

Socket timeouts bound each read, not the call: a server that drips one byte a second, or an SSE
stream of keep-alive comments, never trips them. A ``Deadline`` adds a watchdog. Every socket
opened while it is active is registered with it (the urllib3 connection classes below; the
OpenAI transport registers its own), and when the time is up the watchdog shuts those sockets
down, which ends any blocked read at once, whatever the HTTP library. The caller then sees that
library's connection error and asks ``deadline.expired`` to tell the deadline from a network fault.
"""

from __future__ import annotations

import socket
import threading
import time
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Self

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# The deadline of the call running in this thread (contextvars are per thread), if any.
_current: ContextVar[Deadline | None] = ContextVar("igny8_deadline", default=None)


class DeadlineExceeded(Exception):
    """The whole call took longer than its deadline."""


class Deadline:
    """``with Deadline(seconds) as deadline:`` bounds everything done inside the block.

    Entering starts the watchdog (a timer thread) and makes this the thread's current deadline;
    leaving stops it and releases the registered sockets. Not reentrant; one per call.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._ends = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._fired = threading.Event()
        self._closed = False
        self._timer: threading.Timer | None = None
        self._token: Token[Deadline | None] | None = None

    def __enter__(self) -> Self:
        self._timer = threading.Timer(self.remaining(), self._expire)
        self._timer.daemon = True
        self._timer.start()
        self._token = _current.set(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._token is not None:
            _current.reset(self._token)
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._closed = True
            for sock in self._sockets:
                sock.close()  # our duplicate only; the HTTP library closes its own
            self._sockets = []

    def remaining(self) -> float:
        """Seconds left (0.0 once over)."""
        return max(self._ends - time.monotonic(), 0.0)

    @property
    def expired(self) -> bool:
        return self._fired.is_set() or time.monotonic() >= self._ends

    def check(self) -> None:
        """Raise ``DeadlineExceeded`` when the time is up (call it on every chunk received)."""
        if self.expired:
            raise DeadlineExceeded(f"the call did not finish within {self.seconds:g} s")

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline passes. A duplicate descriptor is kept because
        wrapping a socket in TLS detaches the original object; shutting down any descriptor of
        a connection ends reads on all of them."""
        try:
            duplicate = socket.fromfd(sock.fileno(), sock.family, sock.type)
        except OSError:
            return  # already closed: nothing left to interrupt
        with self._lock:
            if not self._closed:
                self._sockets.append(duplicate)
                duplicate = None
        if duplicate is not None:
            duplicate.close()
        if self._fired.is_set():
            self._expire()

    def _expire(self) -> None:
        self._fired.set()
        with self._lock:  # held so ``__exit__`` cannot close a duplicate mid-shutdown (shutdown never blocks)
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # the connection already ended


def current_deadline() -> Deadline | None:
    """The deadline of the call running in this thread, or None."""
    return _current.get()


def watch_socket(sock: socket.socket) -> None:
    """Register ``sock`` with the current deadline; nothing happens outside one."""
    deadline = _current.get()
    if deadline is not None:
        deadline.watch(sock)


class WatchedHTTPConnection(HTTPConnection):
    """urllib3's connection whose socket is registered with the current deadline as soon as
    the TCP connection exists (``_new_conn`` is urllib3's documented-by-use hook for that)."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        watch_socket(sock)
        return sock


class WatchedHTTPSConnection(HTTPSConnection):
    """As ``WatchedHTTPConnection``; registered before the TLS handshake."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        watch_socket(sock)
        return sock


class WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]
        self.poolmanager.pool_classes_by_scheme = {"http": WatchedHTTPConnectionPool,
                                                   "https": WatchedHTTPSConnectionPool}


def watched_session() -> requests.Session:
    """A ``requests`` session whose connections obey the current deadline."""
    session = requests.Session()
    adapter = _WatchedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
