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

from collections.abc import Callable, Generator, Iterator

from redis.exceptions import RedisError

from ..extensions import db
from ..models import GenerationTask
from ..progress.events import LOST, EventName, TaskEvent, valid_event_id
from ..progress.keys import events_key
from ..progress.schema import FINAL_STATES
from ..tasks.readout import TaskView, get_task, progress_body, progress_store, result_body, task_view
from ..tasks.reconcile import check_task, checked_view
from .follow import follow
from .hub import StreamHub, Subscriber

KEEPALIVE_SECONDS = 15.0


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
    yield from follow(events_key(task_id), last_id,
                      lambda hub, sub, batch: _deliver(hub, sub, batch, account_id, task_id),
                      keepalive, still_allowed, recheck, after_keepalive=lambda: _done_if_ended(account_id, task_id))


def stream_opening(task: GenerationTask, last_event_id: str | None) -> Opening:
    """Nothing but the resume point when ``Last-Event-ID`` can be resumed from Redis, else the
    ``snapshot`` (plus ``done`` when the task has ended) and its id. Taken from the task row the
    view has just read, so opening a stream reads the task once; a dead worker's task is failed
    first (``reconcile.check_task``)."""
    if valid_event_id(last_event_id):
        check_task(task)
        try:
            if progress_store().can_resume(task.id, last_event_id):
                return [], last_event_id
        except RedisError:
            pass
    events = _snapshot_of(task, checked_view)
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


def _snapshot_of(task: GenerationTask, view: Callable[[GenerationTask], TaskView] = task_view) -> list[TaskEvent]:
    summary, items, last_id = view(task)
    events = [TaskEvent(last_id, EventName.SNAPSHOT, progress_body(summary, items))]
    if task.state in FINAL_STATES and summary.finished:
        events.append(TaskEvent(last_id, EventName.DONE, result_body(summary, items)))
    return events


def _deliver(hub: StreamHub, sub: Subscriber, batch: list[TaskEvent], account_id: int,
             task_id: str) -> Generator[TaskEvent, None, Subscriber | None]:
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
