"""How many event streams one web process opens at the same time.

Opening a stream is a handful of steps that each wait on the database or Redis (the credential,
the task, its snapshot). Under gevent every wait sends the request to the back of the line of
ready requests, so when hundreds of streams open in the same second (a page of writers, a
reconnect storm) a click's generate request, which has as many steps, waits a full turn of all of
them at each one and takes seconds (tests/test_load.py: generate p99 5.4 s without the gate,
2.7 s with it, on PostgreSQL). Openings therefore take turns: at most ``STREAM_OPENS_AT_ONCE``
run at once per process, the others wait before their first step, holding no database
connection. Other requests never wait here. An open stream costs nothing: its turn ends as soon
as the view has answered with the stream's opening, before the first byte is sent.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, g, request

F = TypeVar("F", bound=Callable[..., Any])


def opens_stream(view: F) -> F:
    """Mark a view whose answer is an event stream: its opening takes its turn at the gate."""
    view.opens_stream = True  # type: ignore[attr-defined]
    return view


def stream_gate(app: Flask) -> threading.BoundedSemaphore:
    """This process's gate (made on first use, after any fork)."""
    gates: dict[int, threading.BoundedSemaphore] = app.extensions.setdefault("igny8_stream_gates", {})
    pid = os.getpid()
    if pid not in gates:
        gates[pid] = threading.BoundedSemaphore(int(app.config["STREAM_OPENS_AT_ONCE"]))
    return gates[pid]


def register_admission(app: Flask) -> None:
    """Register it before every other before-request step: a waiting opening holds nothing."""

    @app.before_request
    def _take_turn() -> None:
        view = app.view_functions.get(request.endpoint or "")
        if view is not None and getattr(view, "opens_stream", False):
            gate = stream_gate(app)
            gate.acquire()
            g.stream_gate = gate

    def _end_turn(*_args: Any) -> None:
        gate = g.pop("stream_gate", None)
        if gate is not None:
            gate.release()

    # The request's context ends when the view has answered (or failed), before the stream's body
    # is sent: the stream's generator runs in an app context of its own (sse.py).
    app.teardown_request(_end_turn)
