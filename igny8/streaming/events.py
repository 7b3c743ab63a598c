"""The events of a task, shared by the JSON stream (API clients), the modal's HTML-fragment stream
and the command line: snapshot first, live changes after, ``done`` last, then the end.

The snapshot and the id of the last event are read in one Redis transaction, and live events
are read *after* that id (through the process's shared listener, hub.py), so nothing can fall
between them. A reconnect with ``Last-Event-ID`` replays exactly what was missed while it is
still in the stream, else it gets a fresh snapshot.

A Redis outage does not end an open stream at once: it sends keepalives and, when Redis answers
again, reads on from its last event (the hub replays what is still in Redis, exactly once) or,
when the restart lost the keys, sends a fresh ``snapshot`` (the database fills in what Redis no
longer has) and goes on to ``done``. Only an outage longer than STREAM_OUTAGE_SECONDS ends it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from flask import current_app
from redis.exceptions import RedisError

from ..extensions import db
from ..models import GenerationTask
from ..progress.events import KEEPALIVE, LOST, REVOKED, EventName, TaskEvent, valid_event_id
from ..progress.schema import FINAL_STATES
from ..tasks.readout import get_task, progress_body, progress_store, result_body, task_view
from ..tasks.reconcile import check_task
from .hub import StreamHub, Subscriber, get_hub

KEEPALIVE_SECONDS = 15.0
OUTAGE_SECONDS = 30.0  # default STREAM_OUTAGE_SECONDS: how long an open stream waits for Redis


Opening = tuple[list[TaskEvent], str]  # what a stream sends first, and the event id it follows from


def task_events(account_id: int, task_id: str, last_event_id: str | None = None,
                keepalive: float = KEEPALIVE_SECONDS, still_allowed: Callable[[], bool] | None = None,
                recheck: float | None = None, opening: Opening | None = None) -> Iterator[TaskEvent]:
    """Every event of the task from the client's point on; KEEPALIVE when nothing moved for
    ``keepalive`` seconds; a fresh ``snapshot`` when Redis came back without the events the
    client needs; LOST (then the end) when Redis stayed away for STREAM_OUTAGE_SECONDS;
    REVOKED (then the end) when ``still_allowed()``, called at least every ``recheck`` seconds
    and on every keepalive, says no. ``opening`` is ``stream_opening`` of the task when the
    caller has just read it (a view); else it is read here. Needs an app context."""
    if opening is None:
        task = _task(account_id, task_id)
        if task is None:
            return
        try:
            opening = stream_opening(task, last_event_id)
        finally:
            db.session.close()
    events, last_id = opening
    yield from events
    if events and events[-1].name == EventName.DONE:
        return
    yield from _follow(account_id, task_id, last_id, _Timers(keepalive, recheck if still_allowed else None),
                       still_allowed or (lambda: True))


def stream_opening(task: GenerationTask, last_event_id: str | None) -> Opening:
    """Nothing but the resume point when ``Last-Event-ID`` can be resumed from Redis, else the
    ``snapshot`` (plus ``done`` when the task has ended) and its id. Taken from the task row the
    view has just read, so opening a stream reads the task once."""
    if valid_event_id(last_event_id):
        try:
            if progress_store().can_resume(task.id, last_event_id):
                return [], last_event_id
        except RedisError:
            pass
    events = _snapshot_of(task)
    return events, events[0].id


def _snapshot(account_id: int, task_id: str) -> list[TaskEvent] | None:
    """``snapshot`` of the task as it is now (plus ``done`` when it has ended); None when there
    is no such task. Leaves no database connection checked out: a stream stays open for
    minutes, and a few dozen watchers must not exhaust the pool."""
    task = _task(account_id, task_id)
    if task is None:
        return None
    try:
        return _snapshot_of(task)
    finally:
        db.session.close()


def _snapshot_of(task: GenerationTask) -> list[TaskEvent]:
    summary, items, last_id = task_view(task)
    events = [TaskEvent(last_id, EventName.SNAPSHOT, progress_body(summary, items))]
    if task.state in FINAL_STATES and summary.finished:
        events.append(TaskEvent(last_id, EventName.DONE, result_body(summary, items)))
    return events


class _Timers:
    """When a quiet stream owes a keepalive and when its credential is due a re-check."""

    SLACK = 0.05  # a timed wait may return a hair early: that still counts as due

    def __init__(self, keepalive: float, recheck: float | None) -> None:
        self.keepalive, self.recheck = keepalive, recheck
        self.quiet_since = self.checked_at = time.monotonic()

    def wait(self, now: float, outage_left: float | None) -> float:
        waits = [self.keepalive - (now - self.quiet_since)]
        if self.recheck is not None:
            waits.append(self.recheck - (now - self.checked_at))
        if outage_left is not None:
            waits.append(outage_left)
        return max(min(waits), self.SLACK)

    def keepalive_due(self, now: float, quiet: bool) -> bool:
        return quiet and now - self.quiet_since >= self.keepalive - self.SLACK

    def recheck_due(self, now: float, keepalive_due: bool) -> bool:
        due = self.recheck is not None and (keepalive_due or now - self.checked_at >= self.recheck - self.SLACK)
        if due:
            self.checked_at = now
        return due


def _outage(hub: StreamHub, joined: float, now: float) -> float | None:
    """How long this stream has been without Redis (None while Redis answers)."""
    down_since = hub.down_since
    return None if down_since is None else now - max(down_since, joined)


def _follow(account_id: int, task_id: str, last_id: str, timers: _Timers,
            still_allowed: Callable[[], bool]) -> Iterator[TaskEvent]:
    hub = get_hub(current_app.config["REDIS_URL"])
    outage_limit = float(current_app.config.get("STREAM_OUTAGE_SECONDS", OUTAGE_SECONDS))
    sub, joined = hub.subscribe(task_id, last_id), time.monotonic()
    try:
        while True:
            outage = _outage(hub, joined, time.monotonic())
            batch = sub.get(timeout=timers.wait(time.monotonic(), None if outage is None else outage_limit - outage))
            if batch and batch[-1].name == EventName.CLOSING:  # the process stops: no more reads
                yield batch[-1]
                return
            now = time.monotonic()
            keepalive_due = timers.keepalive_due(now, not batch)
            if timers.recheck_due(now, keepalive_due) and not still_allowed():
                yield REVOKED
                return
            outage = _outage(hub, joined, now)
            if outage is not None and outage >= outage_limit - timers.SLACK:
                yield LOST
                return
            if not batch:  # nothing moved (an empty batch: the hub just lost Redis)
                if keepalive_due:
                    timers.quiet_since = now
                    yield KEEPALIVE
                    final = _done_if_ended(account_id, task_id)
                    if final is not None:
                        yield final
                        return
                continue
            timers.quiet_since = now
            following = yield from _deliver(hub, sub, batch, account_id, task_id)
            if following is None:
                return
            sub = following
    finally:
        hub.unsubscribe(sub)


def _deliver(hub: StreamHub, sub: Subscriber, batch: list[TaskEvent], account_id: int,
             task_id: str) -> Iterator[TaskEvent]:
    """Yield a batch from the hub. Returns the subscription to read on (a new one after RESYNC),
    or None when the stream is over (``done``, or the task is gone)."""
    for event in batch:
        if event.name != EventName.RESYNC:
            yield event
            if event.name == EventName.DONE:
                return None
            continue
        fresh = _snapshot(account_id, task_id)  # the hub forgot ``sub``: nothing more arrives on it
        if fresh is None:
            yield LOST
            return None
        yield from fresh
        if fresh[-1].name == EventName.DONE:
            return None
        hub.unsubscribe(sub)
        return hub.subscribe(task_id, fresh[0].id)
    return sub


def _done_if_ended(account_id: int, task_id: str) -> TaskEvent | None:
    """A task can end without a ``done`` in Redis (worker killed, Redis flushed): a quiet stream
    checks the truth at each keepalive, the dead-worker check first."""
    try:
        task = _task(account_id, task_id)
        if task is None:
            return LOST
        check_task(task)
        if task.running:
            return None
        summary, items, last_id = task_view(task)
        return TaskEvent(last_id, EventName.DONE, result_body(summary, items))
    finally:
        db.session.close()  # back to the pool until the next keepalive


def _task(account_id: int, task_id: str) -> GenerationTask | None:
    """A fresh read of the task (None if it was deleted meanwhile)."""
    db.session.expire_all()
    return get_task(account_id, task_id)
