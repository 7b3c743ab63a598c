"""One Redis listener per process, fanning task events out to every stream in that process.

Each SSE client used to block on its own XREAD, holding a Redis connection for its whole life
(redis-py's pool stops at 100, and a disconnected client kept its connection until the next
keepalive). Here one thread (a greenlet under gevent) blocks on XREAD over the streams of every
task watched in this process, plus a private wake-up stream so a new subscription is picked up
at once. Subscribers hold only a queue: the number of Redis connections is constant.

No event is lost or duplicated: the hub keeps one cursor per task and advances it only while
holding its lock, and a subscriber that joins with an older id is caught up (XRANGE up to that
cursor) under the same lock before it receives live events.

Redis going away does not end the subscriptions: the hub keeps its cursors, retries, and once
Redis answers again it checks each task's stream. Where every event after the cursor is still
there (a network blip, a restart that kept its data) the hub simply reads on, so what was
written meanwhile arrives exactly once. Where it is not (a restart that lost the keys) the
task's subscribers get RESYNC: they take a fresh snapshot and subscribe again from its id.
How long an outage a stream waits through is the stream's choice (``down_since``).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections import defaultdict

from redis import Redis
from redis.exceptions import RedisError

from ..progress.events import RESYNC, TaskEvent, event_id_tuple
from ..progress.keys import events_key, task_id_of_events_key

log = logging.getLogger(__name__)
RETRY_SECONDS = 0.5  # between attempts to reach Redis again


def _exclusive(event_id: str) -> str:
    return "(" + event_id


class Subscriber:
    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.queue: queue.Queue[list[TaskEvent]] = queue.Queue()
        self.skip_until: str | None = None  # its snapshot is newer than the hub's cursor
        self.stale = False  # its catch-up could not be read (Redis away): resynced on recovery

    def get(self, timeout: float) -> list[TaskEvent] | None:
        """The next batch of events, or None after ``timeout`` seconds without any."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None


class StreamHub:
    def __init__(self, redis_url: str, block_ms: int = 5000) -> None:
        self.redis = Redis.from_url(redis_url, decode_responses=True, socket_connect_timeout=5,
                                    socket_timeout=(block_ms / 1000) + 10, health_check_interval=30)
        self.block_ms = block_ms
        self.wake_key = f"igny8:hub:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lock = threading.Lock()
        self.subscribers: dict[str, set[Subscriber]] = defaultdict(set)
        self.cursors: dict[str, str] = {}
        self.wake_cursor = "0-0"
        self.thread: threading.Thread | None = None
        # time.monotonic() when Redis stopped answering; None while it answers
        self.down_since: float | None = None

    # ------------------------------------------------------------ subscribers

    def subscribe(self, task_id: str, after_id: str) -> Subscriber:
        """Events of ``task_id`` after ``after_id`` (exclusive), live from now on."""
        sub = Subscriber(task_id)
        with self.lock:
            cursor = self.cursors.get(task_id)
            if cursor is None:
                self.cursors[task_id] = after_id
            elif _id_lt(after_id, cursor):
                try:
                    missed = self.redis.xrange(events_key(task_id), _exclusive(after_id), cursor)
                except RedisError:
                    sub.stale = True
                    missed = []
                if missed:
                    sub.queue.put([TaskEvent.from_entry(entry_id, fields) for entry_id, fields in missed])
            elif _id_lt(cursor, after_id):
                # The subscriber's snapshot is newer than what the hub has read: skip what it has seen.
                sub.skip_until = after_id
            self.subscribers[task_id].add(sub)
            self._ensure_running()
        if sub.stale:
            self._mark_down()
        self._wake()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self.lock:
            subs = self.subscribers.get(sub.task_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self.subscribers[sub.task_id]
                    self.cursors.pop(sub.task_id, None)

    def watching(self) -> int:
        with self.lock:
            return sum(len(s) for s in self.subscribers.values())

    # ------------------------------------------------------------ the listener

    def _ensure_running(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, name="igny8-stream-hub", daemon=True)
            self.thread.start()

    def _wake(self) -> None:
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.xadd(self.wake_key, {"w": "1"}, maxlen=10, approximate=False)
                pipe.expire(self.wake_key, 3600)
                pipe.execute()
        except RedisError:
            pass

    def _run(self) -> None:
        while True:
            with self.lock:
                if not self.subscribers:
                    self.thread = None
                    return
            try:
                if self.down_since is not None:
                    self._recover()
                with self.lock:
                    streams = {events_key(t): c for t, c in self.cursors.items()}
                streams[self.wake_key] = self.wake_cursor
                answer = self.redis.xread(streams, block=self.block_ms, count=1000)
            except RedisError as exc:
                if self._mark_down():
                    log.warning("stream hub lost Redis (%s); streams stay open and resume when it answers", exc)
                threading.Event().wait(RETRY_SECONDS)
                continue
            self._dispatch(answer or [])

    def _mark_down(self) -> bool:
        """Note that Redis does not answer; True when this starts an outage, and then every
        subscriber is woken (an empty batch) to start counting its own patience."""
        with self.lock:
            if self.down_since is not None:
                return False
            self.down_since = time.monotonic()
            for subs in self.subscribers.values():
                for sub in subs:
                    sub.queue.put([])
        return True

    def _recover(self) -> None:
        """Redis answers again: per task, read on from the cursor when the stream still holds every
        event after it, else send RESYNC to its subscribers (and forget them). Raises RedisError
        when Redis is still away (the outage goes on)."""
        with self.lock:
            tasks = list(self.cursors)
            pipe = self.redis.pipeline(transaction=False)
            for task_id in tasks:
                pipe.xrange(events_key(task_id), "-", "+", count=1)
            firsts = pipe.execute()
            resumed = resynced = 0
            for task_id, first in zip(tasks, firsts, strict=True):
                subs = self.subscribers.get(task_id, set())
                if first and not _id_lt(self.cursors[task_id], first[0][0]):
                    stale = {sub for sub in subs if sub.stale}
                    resumed += len(subs) - len(stale)
                else:
                    stale = set(subs)
                for sub in stale:
                    sub.queue.put([RESYNC])
                    subs.discard(sub)
                resynced += len(stale)
                if not subs:
                    self.subscribers.pop(task_id, None)
                    self.cursors.pop(task_id, None)
            self.down_since = None
        log.warning("stream hub: Redis answers again; %d streams read on, %d take a fresh snapshot",
                    resumed, resynced)

    def _dispatch(self, answer: list) -> None:
        with self.lock:
            for key, entries in answer:
                if key == self.wake_key:
                    self.wake_cursor = entries[-1][0]
                    continue
                task_id = task_id_of_events_key(key)
                if task_id not in self.cursors:
                    continue  # unsubscribed meanwhile
                self.cursors[task_id] = entries[-1][0]
                events = [TaskEvent.from_entry(entry_id, fields) for entry_id, fields in entries]
                for sub in self.subscribers.get(task_id, ()):
                    if sub.stale:
                        continue  # it missed its catch-up: RESYNC comes with the recovery
                    skip = sub.skip_until
                    batch = [e for e in events if skip is None or _id_lt(skip, e.id)]
                    if batch:
                        sub.queue.put(batch)


def _id_lt(a: str, b: str) -> bool:
    return event_id_tuple(a) < event_id_tuple(b)


_hubs: dict[str, StreamHub] = {}
_hubs_lock = threading.Lock()


def get_hub(redis_url: str) -> StreamHub:
    """The process's hub for this Redis (created on first use, after any fork)."""
    key = f"{os.getpid()}:{redis_url}"
    with _hubs_lock:
        if key not in _hubs:
            _hubs[key] = StreamHub(redis_url)
        return _hubs[key]
