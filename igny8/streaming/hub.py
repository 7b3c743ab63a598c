"""One Redis listener per process, fanning task events out to every stream in that process.

Subscribers hold only a queue: the number of Redis connections is constant, whatever the number
of streams. The listener does not watch the streams of the tasks themselves: every progress
write also appends a notice to one shared stream (``NOTICES_KEY``, in the same atomic write as
the event) that carries the task's id, the event and its id in the task's stream, and publishes
it. The listener is a subscriber of those notices (streaming/notices.py: in order, without a
gap) and hands each notice of a task this process watches to its subscribers — a wake-up costs
in proportion to the events that arrived (it sends nothing to Redis, whatever the number of
watched tasks), and a new subscription costs one XRANGE (its catch-up), not a re-read of every
watched stream.

No event is lost or duplicated: the hub keeps one cursor per task and delivers (and advances
the cursor) only under its lock, skipping what it already delivered — an event can arrive both
in a catch-up and in its notice. A new task is caught up at subscription (XRANGE after the
subscriber's snapshot id), after the hub noted the notices stream's position, so an event is
either in that catch-up or announced by a later notice. A subscriber that joins a watched task
with an older id gets what it missed (XRANGE up to the cursor) before live events. Should the
listener miss so many notices that some may have been trimmed (it then reads a full batch from
the notices stream), or come back after an outage, it reads every watched stream from its
cursor once.

Redis going away does not end the subscriptions: the hub keeps its cursors, retries, and once
Redis answers again it checks each task's stream. Where every event after the cursor is still
there (a network blip, a restart that kept its data) the hub simply reads on, so what was
written meanwhile arrives exactly once. Where it is not (a restart that lost the keys) the
task's subscribers get RESYNC: they take a fresh snapshot and subscribe again from its id.
How long an outage a stream waits through is the stream's choice (``down_since``).

An account stream (GET /api/v1/events) is followed the same way: the hub watches Redis streams by
key — a task's stream, or an account's — and a notice of an account's task names the account and
the event's id in the account's stream, so one notice is delivered to both kinds of subscribers.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import defaultdict

from redis import Redis
from redis.exceptions import RedisError

from ..progress.events import CLOSING, RESYNC, TaskEvent, event_id_tuple
from ..progress.keys import NOTICES_KEY, account_events_key, events_key
from .notices import Notice, NoticeFeed

log = logging.getLogger(__name__)
RETRY_SECONDS = 0.5  # between attempts to reach Redis again


def _exclusive(event_id: str) -> str:
    return "(" + event_id


class Subscriber:
    """One stream's place at the hub: ``key`` is the Redis stream it follows (a task's or an
    account's)."""

    def __init__(self, key: str) -> None:
        self.key = key
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
        options = {"decode_responses": True, "socket_connect_timeout": 5, "socket_timeout": (block_ms / 1000) + 10,
                   "health_check_interval": 30}
        self.redis = Redis.from_url(redis_url, **options)  # catch-ups at subscription, recovery, the feed
        self.block_ms = block_ms
        self.lock = threading.Lock()
        self.subscribers: dict[str, set[Subscriber]] = defaultdict(set)  # by stream key
        self.cursors: dict[str, str] = {}  # per watched stream key: the last event delivered
        self.notice_cursor: str | None = None  # the last notice read; None while the listener is off
        self.read_all = False  # read every watched stream once (notices may have been missed)
        self.thread: threading.Thread | None = None
        # time.monotonic() when Redis stopped answering; None while it answers
        self.down_since: float | None = None

    # ------------------------------------------------------------ subscribers

    def subscribe(self, task_id: str, after_id: str) -> Subscriber:
        """Events of ``task_id`` after ``after_id`` (exclusive), live from now on."""
        return self.subscribe_key(events_key(task_id), after_id)

    def subscribe_account(self, account_id: int, after_id: str) -> Subscriber:
        """The ``image`` and ``task`` events of every task of the account after ``after_id``."""
        return self.subscribe_key(account_events_key(account_id), after_id)

    def subscribe_key(self, key: str, after_id: str) -> Subscriber:
        """Events of the Redis stream ``key`` after ``after_id`` (exclusive), live from now on."""
        sub = Subscriber(key)
        with self.lock:
            new_key = key not in self.cursors
            cursor = self.cursors.setdefault(key, after_id)  # set first: a failed read resyncs it
            try:
                if self.notice_cursor is None:  # before any catch-up: no notice can slip by
                    last = self.redis.xrevrange(NOTICES_KEY, "+", "-", count=1)
                    self.notice_cursor = last[0][0] if last else "0-0"
                if new_key:
                    self._deliver(key, self.redis.xrange(key, _exclusive(after_id), "+"), only=sub)
                elif _id_lt(after_id, cursor):
                    missed = self.redis.xrange(key, _exclusive(after_id), cursor)
                    if missed:
                        sub.queue.put([TaskEvent.from_entry(entry_id, fields) for entry_id, fields in missed])
                elif _id_lt(cursor, after_id):
                    # The subscriber's snapshot is newer than what the hub has read: skip what it has seen.
                    sub.skip_until = after_id
            except RedisError:
                sub.stale = True
            self.subscribers[key].add(sub)
            self._ensure_running()
        if sub.stale:
            self._mark_down()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self.lock:
            subs = self.subscribers.get(sub.key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self.subscribers[sub.key]
                    self.cursors.pop(sub.key, None)

    def close_all(self) -> None:
        """End every stream of this process at once (CLOSING): the server is stopping. A stream
        otherwise notices that its client left only at its next write."""
        with self.lock:
            for subs in self.subscribers.values():
                for sub in subs:
                    sub.queue.put([CLOSING])

    def watching(self, prefix: str = "") -> int:
        """Subscribers of the streams whose key starts with ``prefix`` (all by default)."""
        with self.lock:
            return sum(len(s) for key, s in self.subscribers.items() if key.startswith(prefix))

    # ------------------------------------------------------------ the listener

    def _ensure_running(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, name="igny8-stream-hub", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        feed = NoticeFeed(self.redis, self.block_ms)
        try:
            while self._listen(feed):
                pass
        finally:
            feed.close()

    def _listen(self, feed: NoticeFeed) -> bool:
        """One wake-up of the listener: the notices that arrived, delivered. False when no stream
        is watched any more (the listener ends; the next subscription starts another)."""
        with self.lock:
            if not self.subscribers:
                self.thread, self.notice_cursor = None, None
                return False
        try:
            if self.down_since is not None:
                self._recover()
            notices, complete = self._notices(feed)
            with self.lock:
                if notices:
                    self.notice_cursor = notices[-1][0]
                if self.read_all or not complete:
                    targets, self.read_all = dict(self.cursors), False
                else:
                    targets = self._deliver_notices(notices)
            if targets:
                self._read(targets)
        except RedisError as exc:
            feed.close()
            if self._mark_down():
                log.warning("stream hub lost Redis (%s); streams stay open and resume when it answers", exc)
            threading.Event().wait(RETRY_SECONDS)
        return True

    def _notices(self, feed: NoticeFeed) -> tuple[list[Notice], bool]:
        """The next change notices (waiting up to ``block_ms``) and whether they are complete;
        none when every watched stream is to be read anyway."""
        with self.lock:
            if self.notice_cursor is None:  # its position was never read (Redis away at subscription)
                last = self.redis.xrevrange(NOTICES_KEY, "+", "-", count=1)
                self.notice_cursor, self.read_all = (last[0][0] if last else "0-0"), True
            if self.read_all:
                return [], True
            cursor = self.notice_cursor
        return feed.next(cursor)

    def _deliver_notices(self, notices: list[Notice]) -> dict[str, str]:
        """Deliver the events the notices carry to the watched streams, in order; returns the
        streams that must be read instead (a notice without its event, from an older writer:
        that stream's later notices are then covered by the read). Called with the lock held."""
        targets: dict[str, str] = {}
        for _notice_id, fields in notices:
            key = events_key(fields.get("t") or "")
            if key in self.cursors and key not in targets:
                if "i" in fields:
                    self._deliver(key, [(fields["i"], fields)])
                else:
                    targets[key] = self.cursors[key]
            account = fields.get("a")
            if account and (key := account_events_key(account)) in self.cursors and key not in targets:
                self._deliver(key, [(fields["ai"], {"t": fields["t"], "i": fields["i"], "event": fields["event"],
                                                     "data": fields.get("ad", fields["data"])})])
        return targets

    def _read(self, targets: dict[str, str]) -> None:
        """Read the changed streams after their cursors (one round trip), then deliver."""
        keys = list(targets)
        with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.xrange(key, _exclusive(targets[key]), "+")
            answers = pipe.execute()
        with self.lock:
            for key, entries in zip(keys, answers, strict=True):
                self._deliver(key, entries)

    def _deliver(self, key: str, entries: list, only: Subscriber | None = None) -> None:
        """Hand the entries newer than the stream's cursor to its subscribers (``only`` one, for a
        catch-up at subscription) and advance the cursor. Called with the lock held."""
        cursor = self.cursors.get(key)
        if cursor is None:
            return  # unsubscribed meanwhile
        entries = [(entry_id, fields) for entry_id, fields in entries if _id_lt(cursor, entry_id)]
        if not entries:
            return
        self.cursors[key] = entries[-1][0]
        events = [TaskEvent.from_entry(entry_id, fields) for entry_id, fields in entries]
        for sub in ([only] if only is not None else self.subscribers.get(key, ())):
            if sub.stale:
                continue  # it missed its catch-up: RESYNC comes with the recovery
            skip = sub.skip_until
            batch = [e for e in events if skip is None or _id_lt(skip, e.id)]
            if batch:
                sub.queue.put(batch)

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
        """Redis answers again: per stream, read on from the cursor when it still holds every
        event after it, else send RESYNC to its subscribers (and forget them). Raises RedisError
        when Redis is still away (the outage goes on)."""
        with self.lock:
            keys = list(self.cursors)
            pipe = self.redis.pipeline(transaction=False)
            pipe.ping()  # Redis must answer even when no stream is watched any more
            for key in keys:
                pipe.xrange(key, "-", "+", count=1)
            firsts = pipe.execute()[1:]
            resumed = resynced = 0
            for key, first in zip(keys, firsts, strict=True):
                subs = self.subscribers.get(key, set())
                if first and not _id_lt(self.cursors[key], first[0][0]):
                    stale = {sub for sub in subs if sub.stale}
                    resumed += len(subs) - len(stale)
                else:
                    stale = set(subs)
                for sub in stale:
                    sub.queue.put([RESYNC])
                    subs.discard(sub)
                resynced += len(stale)
                if not subs:
                    self.subscribers.pop(key, None)
                    self.cursors.pop(key, None)
            self.down_since = None
            self.read_all = True  # what was written meanwhile: its notices may be gone
        log.warning("stream hub: Redis answers again; %d streams read on, %d take a fresh snapshot",
                    resumed, resynced)


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
