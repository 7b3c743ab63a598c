"""Server-sent events on the wire: one value type with its encoding, the response that carries
a stream, and the loop that turns a task's events into the text of that response.

Streaming follows the Flask docs' rule (headers set before the first byte, nothing read from
the request once streaming starts) with one deviation, on purpose: instead of
``stream_with_context``, which keeps the *request* context (and its database session) alive
for the whole life of the stream, the generator pushes its own app context and returns its
session to the pool between reads. A stream stays open for minutes; holding a database
connection for each would exhaust the pool with a few dozen watchers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from flask import Flask, Response

from ..extensions import db
from ..ops.metrics import OPEN_STREAMS
from ..progress.events import EventName, TaskEvent
from .events import KEEPALIVE_SECONDS, Opening, task_events

RETRY_MS = 2_000
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering (nginx)
# One task event -> the text of one or more server-sent events
Formatter = Callable[[TaskEvent], str]


@dataclass(frozen=True)
class ServerSentEvent:
    """One event of the ``text/event-stream`` format (as sse-starlette's): data, event name, id,
    reconnection delay, or a comment line (which clients ignore; proxies see traffic)."""

    data: str | None = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = None

    def encode(self) -> str:
        lines = [f": {self.comment}"] if self.comment is not None else []
        if self.id:
            lines.append(f"id: {self.id}")
        if self.event:
            lines.append(f"event: {self.event}")
        if self.data is not None:
            lines.extend(f"data: {line}" for line in self.data.splitlines() or [""])
        if self.retry is not None:
            lines.append(f"retry: {self.retry}")
        return "\n".join(lines) + "\n\n"


def encode(event: str, data: str, event_id: str | None = None) -> str:
    return ServerSentEvent(data=data, event=event, id=event_id).encode()


def json_formatter(event: TaskEvent) -> str:
    """The JSON stream of API and CLI clients: each task event as it is, its body as JSON."""
    return encode(event.name, event.json(), event.id)


def sse_response(body: Iterable[str]) -> Response:
    """Headers set before the first byte; the body has its own app context (see above)."""
    return Response(body, mimetype="text/event-stream", headers=HEADERS)


ENDINGS = {EventName.REVOKED: ServerSentEvent(comment="access revoked").encode(),
           EventName.CLOSING: ServerSentEvent(comment="server closing, reconnect").encode()}
SIGNALS = {EventName.KEEPALIVE: ServerSentEvent(comment="keepalive").encode(),
           EventName.LOST: ServerSentEvent(comment="progress store unavailable, reconnect").encode()}


def sse_stream(app: Flask, account_id: int, task_id: str, opening: Opening,
               fmt: Formatter, still_allowed: Callable[[], bool] | None = None) -> Iterator[str]:
    """The text of a task's SSE response. Runs after the request (own app context and session);
    ``opening`` (events.stream_opening) was read by the view. ``still_allowed`` (see
    accounts.auth.credential_check) re-checks the caller's credential."""
    def events(recheck: float) -> Iterator[TaskEvent]:
        return task_events(account_id, task_id, still_allowed=still_allowed, recheck=recheck, opening=opening)

    return sse_body(app, events, fmt)


def sse_body(app: Flask, events: Callable[[float], Iterable[TaskEvent]], fmt: Formatter) -> Iterator[str]:
    """The text of an SSE response from ``events(recheck)`` (the stream's events, called in the
    stream's own app context; ``recheck``: how often the credential is checked again)."""
    with app.app_context():
        OPEN_STREAMS.inc()
        try:
            yield ServerSentEvent(retry=RETRY_MS).encode()
            recheck = float(app.config.get("STREAM_AUTH_RECHECK_SECONDS", KEEPALIVE_SECONDS))
            for event in events(recheck):
                if event.name in ENDINGS:
                    yield ENDINGS[event.name]
                    return
                yield SIGNALS[event.name] if event.name in SIGNALS else fmt(event)
        finally:
            OPEN_STREAMS.dec()
            db.session.remove()
