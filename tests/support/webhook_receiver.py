"""A local server standing for an account's webhook endpoint: it records every delivery (its
headers and raw body) and answers from a script — a status code per request (200 once the
script is spent), or ``"hang"`` (no answer until the test ends)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.fake_http import FakeProviderServer, Handler


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver(FakeProviderServer):
    name = "webhook-receiver"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.received: list[Received] = []
        self.answers: deque[int | str] = deque()
        self.arrived = threading.Condition(self._lock)

    def script(self, *answers: int | str) -> None:
        with self._lock:
            self.answers.extend(answers)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def allowed_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def deliveries(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def handle_post(self, handler: Handler, body: Any) -> None:
        raise AssertionError("do_POST is replaced below")  # pragma: no cover

    def receive(self, handler: Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        with self._lock:
            self.received.append(Received(handler.path, {k: v for k, v in handler.headers.items()}, raw))
            answer = self.answers.popleft() if self.answers else 200
            self.arrived.notify_all()
        if answer == "hang":
            self._stopping.wait(30)
            return handler.drop()
        return handler.send_json(int(answer), {"ok": int(answer) < 300})

    def start(self) -> WebhookReceiver:
        super().start()
        receiver = self

        def do_post(handler: Handler) -> None:
            receiver.receive(handler)

        self._server.RequestHandlerClass.do_POST = do_post  # raw body needed: the signature covers the bytes
        return self


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()
