"""The events of a task, shared by the JSON stream (API clients), the modal's HTML-fragment stream
and the command line: snapshot first, live changes after, ``done`` last, then the end.

The snapshot and the id of the last event are read in one Redis transaction, and live events
are read *after* that id (through the process's shared listener, hub.py), so nothing can fall
between them. A reconnect with ``Last-Event-ID`` replays exactly what was missed while it is
still in the stream, else it gets a fresh snapshot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, current_app
from redis.exceptions import RedisError

from .extensions import db
from .hub import get_hub
from .models import GenerationTask
from .progress import valid_event_id
from .reconcile import reconcile
from .task_state import get_task, progress_body, progress_store, result_body, task_view

KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2_000
FINAL_STATES = ("SUCCESS", "FAILURE")
KEEPALIVE = ("", "keepalive", {})
LOST = ("", "lost", {})
REVOKED = ("", "revoked", {})  # the credential that opened the stream is gone
Event = tuple[str, str, dict[str, Any]]  # (id, event name, payload)
# (event name, payload, event id) -> the text of one or more SSE events
Formatter = Callable[[str, dict[str, Any], str], str]


def task_events(account_id: int, task_id: str, last_event_id: str | None = None,
                keepalive: float = KEEPALIVE_SECONDS, still_allowed: Callable[[], bool] | None = None,
                recheck: float | None = None) -> Iterator[Event]:
    """Every event of the task from the client's point on; KEEPALIVE when nothing moved for
    ``keepalive`` seconds; LOST when Redis went away; REVOKED (then the end) when
    ``still_allowed()``, called at least every ``recheck`` seconds and on every keepalive, says no.
    Needs an app context."""
    last_id = None
    if valid_event_id(last_event_id):
        try:
            last_id = last_event_id if progress_store().can_resume(task_id, last_event_id) else None
        except RedisError:
            last_id = None
    if last_id is None:
        task = _task(account_id, task_id)
        if task is None:
            return
        summary, items, last_id = task_view(task)
        ended = task.state in FINAL_STATES and summary["state"] in FINAL_STATES
        # A stream stays open for minutes: it must not hold one of the pool's database connections
        # (a few dozen watchers would exhaust it). The session reconnects when it is used again.
        db.session.close()
        yield last_id, "snapshot", progress_body(summary, items)
        if ended:
            yield last_id, "done", result_body(summary, items)
            return
    yield from _follow(account_id, task_id, last_id, keepalive, still_allowed, recheck or keepalive)


def _follow(account_id: int, task_id: str, last_id: str, keepalive: float,
            still_allowed: Callable[[], bool] | None, recheck: float) -> Iterator[Event]:
    hub = get_hub(current_app.config["REDIS_URL"])
    sub = hub.subscribe(task_id, last_id)
    quiet_since = checked_at = time.monotonic()
    slack = 0.05  # a timed wait may return a hair early: that still counts as due
    try:
        while True:
            wait = keepalive - (time.monotonic() - quiet_since)
            if still_allowed is not None:
                wait = min(wait, recheck - (time.monotonic() - checked_at))
            batch = sub.get(timeout=max(wait, slack))
            now = time.monotonic()
            keepalive_due = batch is None and now - quiet_since >= keepalive - slack
            if still_allowed is not None and (keepalive_due or now - checked_at >= recheck - slack):
                checked_at = now
                if not still_allowed():
                    yield REVOKED
                    return
            if batch is None:
                if not keepalive_due:
                    continue  # woke up only to re-check the credential
                quiet_since = now
                yield KEEPALIVE
                final = _final_if_ended(account_id, task_id)
                if final is not None:
                    yield final
                    return
                continue
            quiet_since = now
            for event in batch:
                yield LOST if event[1] == "lost" else event
                if event[1] in ("done", "lost"):
                    return
    finally:
        hub.unsubscribe(sub)


def _final_if_ended(account_id: int, task_id: str) -> Event | None:
    """A task can end without a ``done`` in Redis (worker killed, Redis flushed): check the truth."""
    try:
        task = _task(account_id, task_id)
        if task is None:
            return LOST
        if task.running:
            reconcile(task)
        if task.running:
            return None
        summary, items, last_id = task_view(task)
        return last_id, "done", result_body(summary, items)
    finally:
        db.session.close()  # back to the pool until the next keepalive


def _task(account_id: int, task_id: str) -> GenerationTask | None:
    """A fresh read of the task (None if it was deleted meanwhile)."""
    db.session.expire_all()
    return get_task(account_id, task_id)


# ---------------------------------------------------------------- server-sent events

def sse(event: str, data: str, event_id: str | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id else []
    lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    return "\n".join(lines) + "\n\n"


def json_formatter(event: str, payload: dict[str, Any], event_id: str) -> str:
    return sse(event, json.dumps(payload, separators=(",", ":")), event_id)


def sse_stream(app: Flask, account_id: int, task_id: str, last_event_id: str | None,
               fmt: Formatter, still_allowed: Callable[[], bool] | None = None) -> Iterator[str]:
    """The text of an SSE response. Runs after the request (own app context and session).
    ``still_allowed`` (see auth.credential_check) re-checks the caller's credential while it runs."""
    with app.app_context():
        try:
            yield f"retry: {RETRY_MS}\n\n"
            recheck = float(app.config.get("STREAM_AUTH_RECHECK_SECONDS", KEEPALIVE_SECONDS))
            for event_id, event, payload in task_events(account_id, task_id, last_event_id,
                                                        still_allowed=still_allowed, recheck=recheck):
                if event == "keepalive":
                    yield ": keepalive\n\n"
                elif event == "revoked":
                    yield ": access revoked\n\n"
                    return
                elif event == "lost":
                    yield ": progress store unavailable, reconnect\n\n"
                else:
                    yield fmt(event, payload, event_id)
        finally:
            db.session.remove()
