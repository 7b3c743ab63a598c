"""The account stream (GET /api/v1/events): a ``snapshot`` of the account's unfinished tasks, then
the ``image`` and ``task`` events of every task of the account, wherever it was started.

Every ``image`` and ``task`` write of a task also lands, in the same atomic script, in the
account's capped Redis stream (``progress/store.py``); the account stream follows that stream
through the process's shared listener (hub.py), exactly as a task's stream follows the task's.
Event ids are ids of the account's Redis stream, so ``Last-Event-ID`` resumes from there while
the events after it are still kept, else the client gets a fresh snapshot.

Nothing falls between the snapshot and the live events, and nothing arrives twice or out of
date: the snapshot is read *after* the account stream's last id, and it notes, per task, the id
of the last event of that task it already reflects; a live event of that task at or before that
id is skipped. A task created after the snapshot's database read has all its events after the
account stream's last id (the database row is committed before its first event is written).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from typing import NamedTuple

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import func, select

from ..extensions import db
from ..models import GenerationTask
from ..progress.events import EventName, TaskEvent, event_id_tuple, valid_event_id
from ..progress.keys import account_events_key
from ..progress.schema import RUNNING_STATES
from ..tasks.readout import progress_body, progress_store, task_view
from .events import KEEPALIVE_SECONDS
from .follow import follow
from .hub import StreamHub, Subscriber

SNAPSHOT_LIMIT = 500  # unfinished tasks in a snapshot (newest first); ``unfinished`` counts them all
LIVE_EVENTS = (EventName.IMAGE, EventName.TASK)


class AccountOpening(NamedTuple):
    """What an account stream sends first, the account-stream id it follows from, and per task
    of the snapshot the id (in the task's stream) of the last event the snapshot reflects."""

    events: list[TaskEvent]
    last_id: str
    seen: dict[str, str]


def account_opening(account_id: int, last_event_id: str | None) -> AccountOpening:
    """Nothing but the resume point when ``Last-Event-ID`` can be resumed from Redis, else the
    snapshot. Needs an app context; leaves the session to its owner (the request, or the stream)."""
    if valid_event_id(last_event_id):
        try:
            if progress_store().can_resume_account(account_id, last_event_id):
                return AccountOpening([], last_event_id, {})
        except RedisError:
            pass
    return account_snapshot(account_id)


def account_snapshot(account_id: int) -> AccountOpening:
    """``snapshot``: ``{"tasks": [task_progress body of each unfinished task, newest first],
    "unfinished": n, "server_time"}``, with the account stream's last id."""
    try:
        last_id = progress_store().account_last_id(account_id)
    except RedisError:
        last_id = "0-0"
    running = GenerationTask.account_id == account_id, GenerationTask.state.in_(RUNNING_STATES)
    tasks = db.session.scalars(select(GenerationTask).where(*running)
                               .order_by(GenerationTask.created_at.desc(), GenerationTask.id)
                               .limit(SNAPSHOT_LIMIT)).all()
    count = len(tasks) if len(tasks) < SNAPSHOT_LIMIT else db.session.scalar(
        select(func.count()).select_from(GenerationTask).where(*running))
    bodies, seen = [], {}
    for task in tasks:
        summary, items, task_last = task_view(task)
        body = progress_body(summary, items)
        if getattr(task, "run_id", None) is not None:  # a bulk run's task (the Run model's column)
            body["run_id"] = task.run_id
        bodies.append(body)
        seen[task.id] = task_last
    data = {"tasks": bodies, "unfinished": count, "server_time": time.time()}
    return AccountOpening([TaskEvent(last_id, EventName.SNAPSHOT, data)], last_id, seen)


def account_events(account_id: int, opening: AccountOpening, keepalive: float | None = None,
                   still_allowed: Callable[[], bool] | None = None,
                   recheck: float | None = None) -> Iterator[TaskEvent]:
    """The opening, then every live event of the account; KEEPALIVE when nothing moved for
    ``keepalive`` seconds (STREAM_KEEPALIVE_SECONDS, at most 15); a fresh ``snapshot`` when Redis
    came back without the events the client needs; LOST (then the end) after STREAM_OUTAGE_SECONDS
    without Redis; REVOKED (then the end) when ``still_allowed()`` says no. Never ends otherwise.
    Needs an app context; holds no database session between its reads.

    The credential is re-checked *after* a write: a client that has left is noticed when the
    server next writes to it, and a stream whose client is gone should not reach for the database."""
    yield from opening.events
    if keepalive is None:
        keepalive = min(float(current_app.config.get("STREAM_KEEPALIVE_SECONDS", KEEPALIVE_SECONDS)),
                        KEEPALIVE_SECONDS)
    seen = dict(opening.seen)
    yield from follow(account_events_key(account_id), opening.last_id,
                      lambda hub, sub, batch: _deliver(hub, sub, batch, account_id, seen),
                      keepalive, still_allowed, recheck)


def _deliver(hub: StreamHub, sub: Subscriber, batch: list[TaskEvent], account_id: int,
             seen: dict[str, str]) -> Generator[TaskEvent, None, Subscriber]:
    """Yield the batch's live events the client has not seen; returns the subscription to read on
    (a new one, after a fresh snapshot, on RESYNC). Keeps ``seen``, the marks, up to date."""
    for event in batch:
        if event.name == EventName.RESYNC:  # the hub forgot ``sub``: nothing more arrives on it
            try:
                fresh = account_snapshot(account_id)
            finally:
                db.session.close()
            yield from fresh.events
            hub.unsubscribe(sub)
            seen.clear()
            seen.update(fresh.seen)
            return hub.subscribe_account(account_id, fresh.last_id)
        if event.name not in LIVE_EVENTS:
            continue
        mark = seen.get(event.task_id or "")
        if mark is not None:
            if event.task_event_id and event_id_tuple(event.task_event_id) <= event_id_tuple(mark):
                continue  # the snapshot shows this already
            del seen[event.task_id]  # every later event of the task is newer still
        yield event
    return sub
