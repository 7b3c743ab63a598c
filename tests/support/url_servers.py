"""A local server standing for "somewhere a provider's image URL points": it serves an image,
drips one, sends huge bodies (with or without Content-Length) and redirects, and it records
every connection, request and byte sent, so tests can prove what the URL policy did *not* do.

Paths: ``/image.png``; ``/drip.png`` (Content-Length, then one byte a second); ``/big/<MB>``
(``?sized=0`` for a close-delimited body); ``/redirect?to=<url>`` (302).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.fake_http import FakeProviderServer, Handler, sample_image

CHUNK = 64 * 1024


class ImageHost(FakeProviderServer):
    name = "image-host"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.requests: list[tuple[str, str]] = []  # (path, Host header)
        self.bytes_sent = 0
        self.big_finished = threading.Event()  # set only when a whole big body went out

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def handle_get(self, handler: Handler) -> None:
        with self._lock:
            self.requests.append((handler.path, handler.headers.get("Host", "")))
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
        if parts.path == "/image.png":
            return handler.send_raw(200, sample_image(64, 48, "png"), "image/png")
        if parts.path == "/drip.png":
            return handler.send_drip(200, sample_image(64, 48, "png"), "image/png")
        if parts.path == "/redirect":
            handler.send_response(302)
            handler.send_header("Location", query["to"][0])
            handler.send_header("Content-Length", "0")
            handler.send_header("Connection", "close")
            handler.end_headers()
            return None
        if parts.path.startswith("/big/"):
            return self._send_big(handler, int(parts.path.removeprefix("/big/")) * 1024 * 1024,
                                  sized=query.get("sized", ["1"])[0] == "1")
        return handler.send_json(404, {"error": "not found"})

    def _send_big(self, handler: Handler, size: int, *, sized: bool) -> None:
        """``size`` bytes in 64 KiB writes, counting each; a client that hangs up stops it."""
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        if sized:
            handler.send_header("Content-Length", str(size))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        block = b"\0" * CHUNK
        sent = 0
        try:
            while sent < size:
                handler.wfile.write(block)
                sent += CHUNK
                with self._lock:
                    self.bytes_sent += CHUNK
        except OSError:
            return  # the client refused the rest: what the tests want to see
        self.big_finished.set()


@pytest.fixture
def image_host() -> Iterator[ImageHost]:
    server = ImageHost().start()
    yield server
    server.stop()
