"""The shared machinery of the fake provider servers in ``tests/support/provider_servers.py``: a stdlib
``ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread, a thread-safe log of the JSON bodies
received, and the behaviour script (queued behaviours, or a ``[provider-fail:<behaviour>]``
trigger in the prompt). Subclasses answer in their provider's wire format.
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import sys
import threading
from collections import deque
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from PIL import Image

BEHAVIOURS = ("ok", "429", "429-noheader", "500", "503", "timeout", "reset", "malformed", "garbage-image",
              "content-policy", "bad-key", "no-balance", "drip", "keepalive", "json-for-stream")
TRIGGER = re.compile(r"\[provider-fail:([a-z0-9-]+)\]")
PIL_FORMATS = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG", "jpg": "JPEG"}
NOT_AN_IMAGE = base64.b64encode(b"this is certainly not an image").decode()


@lru_cache(maxsize=32)
def sample_image(width: int, height: int, fmt: str = "png", quality: int = 100) -> bytes:
    """A small real image of the requested size (a flat colour compresses to a few KB), at
    ``quality`` for the lossy formats."""
    buffer = io.BytesIO()
    pil_format = PIL_FORMATS.get(fmt.lower(), "PNG")
    options = {"quality": quality} if pil_format in ("WEBP", "JPEG") else {}
    Image.new("RGB", (width, height), (90, 140, 200)).save(buffer, format=pil_format, **options)
    return buffer.getvalue()


class Handler(BaseHTTPRequestHandler):
    """Hands every request to its ``FakeProviderServer``; one connection per request."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeProvider/1.0"
    fake: FakeProviderServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        self.fake.handle_post(self, body)

    def do_GET(self) -> None:  # noqa: N802
        self.fake.handle_get(self)

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.send_raw(status, json.dumps(body).encode(), "application/json", headers)

    def send_raw(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def send_drip(self, status: int, payload: bytes, content_type: str, interval: float = 1.0) -> None:
        """Headers at once, then the body one byte every ``interval`` seconds (a server that never
        trips a per-read timeout); stops when the client goes away or the server stops."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        for index in range(len(payload)):
            if self.fake._stopping.wait(interval):
                return
            self.wfile.write(payload[index:index + 1])
            self.wfile.flush()

    def drop(self) -> None:
        """Close the connection without answering (what a crashing proxy does)."""
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence per-request logs
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    connections = 0  # TCP connections accepted (a refused URL must cause none)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections += 1  # the accept loop is one thread: no lock needed
        return True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout tests) is expected; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError | OSError):
            super().handle_error(request, client_address)


class FakeProviderServer:
    """Shared machinery: the thread, the call log, the behaviour script."""

    name = "fake"

    def __init__(self, *, port: int = 0, latency: float = 0.0, hang_seconds: float = 5.0) -> None:
        self.port, self.latency, self.hang_seconds = port, latency, hang_seconds
        self._lock = threading.Lock()
        self._calls: list[Any] = []
        self._behaviours: deque[str] = deque()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        handler = type(f"{type(self).__name__}Handler", (Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", self.port), handler)
        self.port = self._server.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.name}-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in "timeout"
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def calls(self) -> list[Any]:
        """The JSON bodies received, oldest first (a copy)."""
        with self._lock:
            return list(self._calls)

    @property
    def connection_count(self) -> int:
        return self._server.connections if self._server is not None else 0

    @property
    def call_count(self) -> int:
        with self._lock:
            return len(self._calls)

    def queue_behaviours(self, *items: str) -> None:
        unknown = [item for item in items if item not in BEHAVIOURS]
        if unknown:
            raise ValueError(f"unknown behaviours {unknown}; known: {BEHAVIOURS}")
        with self._lock:
            self._behaviours.extend(items)

    def _next_call(self, body: Any, prompt: str) -> str:
        """Record the call and pick its behaviour: prompt trigger, else the script, else ok."""
        triggered = TRIGGER.search(prompt or "")
        with self._lock:
            self._calls.append(body)
            if triggered and triggered.group(1) in BEHAVIOURS:
                return triggered.group(1)
            return self._behaviours.popleft() if self._behaviours else "ok"

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def handle_post(self, handler: Handler, body: Any) -> None:
        raise NotImplementedError

    def handle_get(self, handler: Handler) -> None:
        handler.send_json(404, {"error": "not found"})

    def _common_fault(self, handler: Handler, behaviour: str) -> bool:
        """Faults that look alike on both providers; True when the call was answered."""
        if behaviour == "reset":
            handler.drop()
        elif behaviour == "malformed":
            handler.send_raw(200, b'{"data": [{"b64_json": "iVBOR', "application/json")
        else:
            return False
        return True
