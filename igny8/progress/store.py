"""The Redis progress schema: one hash per task, one hash per image, one event stream per task.

Every change is written by one atomic script (``_WRITE``): the hash update, an entry in the
task's Redis stream, and a change notice on the shared notices stream that carries the event
itself (with the id it got in the task's stream), also published on a channel. The task's
stream is the log that SSE clients resume from: a reader takes a snapshot together with the
stream's last id in one transaction, then follows the events after that id, so no update can
fall between the snapshot and the live events, and ``Last-Event-ID`` is simply a stream id. The
notice lets each web process's listener deliver the event without a second read
(streaming/hub.py). ``image`` and ``task`` events also go, in the same script, to the capped
stream of the task's account, which the account stream (GET /api/v1/events,
streaming/account.py) follows and resumes from.

Redis is a cache of progress, not the truth: every write tolerates a Redis outage (the database
row is written by the job regardless), and readers fall back to the database.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from .events import EventName, TaskEvent, event_id_tuple
from .keys import (
    ACCOUNT_EVENTS_MAXLEN,
    ACCOUNT_EVENTS_SUFFIX,
    ACCOUNT_PREFIX,
    NOTICES_CHANNEL,
    NOTICES_KEY,
    NOTICES_MAXLEN,
    account_events_key,
    cancel_key,
    events_key,
    image_key,
    task_key,
)
from .schema import QueueItem, TaskSummary

log = logging.getLogger(__name__)

# KEYS: the hash, the task's event stream, the notices stream, the task's hash, more keys to expire
# with them. ARGV: ttl, stream maxlen, notices maxlen, task id, event name, event data, account
# stream maxlen, account stream ttl, account stream key prefix and suffix, the notices channel,
# then hash field/value pairs. The notice is also published on the channel, after its id and the
# previous notice's (so a listener can tell that it missed one: streaming/notices.py).
# ``image`` and ``task`` events also go to the account's stream (the account id is read from the
# task's hash), their data given ``task_id`` (and ``run_id`` when the task's hash has one) if it
# lacks them; the notice then names the account and that entry ("a", "ai", and "ad" when the
# account's data differs).
_WRITE = """
if #ARGV > 11 then redis.call('HSET', KEYS[1], unpack(ARGV, 12)) end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[5], 'data', ARGV[6])
local notice = {'t', ARGV[4], 'i', id, 'event', ARGV[5], 'data', ARGV[6]}
local account = false
if ARGV[5] == 'image' or ARGV[5] == 'task' then account = redis.call('HGET', KEYS[4], 'account_id') end
if account and account ~= '' and account ~= '0' then
  local data, extra = ARGV[6], ''
  if not string.find(data, '"task_id":', 1, true) then extra = ',"task_id":' .. cjson.encode(ARGV[4]) end
  local run = redis.call('HGET', KEYS[4], 'run_id')
  if run and run ~= '' and not string.find(data, '"run_id":', 1, true) then
    if not string.match(run, '^%d+$') then run = cjson.encode(run) end
    extra = extra .. ',"run_id":' .. run
  end
  if extra ~= '' then
    if data == '{}' then data = '{' .. string.sub(extra, 2) .. '}'
    else data = '{' .. string.sub(extra, 2) .. ',' .. string.sub(data, 2) end
  end
  local key = ARGV[9] .. account .. ARGV[10]
  local aid = redis.call('XADD', key, 'MAXLEN', '~', ARGV[7], '*',
                         't', ARGV[4], 'i', id, 'event', ARGV[5], 'data', data)
  redis.call('EXPIRE', key, ARGV[8])
  table.insert(notice, 'a'); table.insert(notice, account)
  table.insert(notice, 'ai'); table.insert(notice, aid)
  if data ~= ARGV[6] then table.insert(notice, 'ad'); table.insert(notice, data) end
end
local previous = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local nid = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(notice))
previous = previous[1] and previous[1][1] or '0-0'
local nl = string.char(10)
redis.call('PUBLISH', ARGV[11], nid .. nl .. previous .. nl .. table.concat(notice, nl))
for i = 1, #KEYS do
  if i ~= 3 and i ~= 4 then redis.call('EXPIRE', KEYS[i], ARGV[1]) end
end
return id
"""

STREAM_MAXLEN = 2000
RUNNING_TTL = 7 * 24 * 3600  # safety net; finished tasks get the shorter PROGRESS_TTL
ACCOUNT_EVENTS_TTL = 24 * 3600  # an account's stream lives a day after its last event

# (task summary, items, id of the last event); (None, [], "0-0") when Redis has no such task
Snapshot = tuple[TaskSummary | None, list[QueueItem], str]


class ProgressStore:
    """Writes and reads the progress of tasks. One instance per process (it holds no state
    but the Redis client, whose pool is shared)."""

    def __init__(self, redis: Redis, finished_ttl: int = 24 * 3600) -> None:
        self.redis = redis
        self.finished_ttl = finished_ttl
        self._write_script = redis.register_script(_WRITE)

    # ------------------------------------------------------------ writing

    def _write(self, task_id: str, key: str, fields: dict[str, str], event: TaskEvent,
               ttl: int = RUNNING_TTL, extra_keys: Iterable[str] = ()) -> str | None:
        """HSET + XADD + the change notice (+ EXPIRE) atomically; returns the event id, or None if
        Redis is down."""
        entry = event.entry()
        args: list[Any] = [ttl, STREAM_MAXLEN, NOTICES_MAXLEN, task_id, entry["event"], entry["data"],
                           ACCOUNT_EVENTS_MAXLEN, ACCOUNT_EVENTS_TTL, ACCOUNT_PREFIX, ACCOUNT_EVENTS_SUFFIX,
                           NOTICES_CHANNEL]
        for name, value in fields.items():
            args += [name, value]
        keys = [key, events_key(task_id), NOTICES_KEY, task_key(task_id), *extra_keys]
        try:
            return self._write_script(keys=keys, args=args)
        except RedisError as exc:
            log.warning("progress write failed task=%s event=%s: %s", task_id, event.name, exc)
            return None

    def init_task(self, summary: TaskSummary, items: list[QueueItem]) -> None:
        """Create the task hash and one hash per image (called by the web request, before enqueue)."""
        task_id = summary.task_id
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(task_key(task_id), events_key(task_id))
            for item in items:
                pipe.hset(image_key(task_id, item.image_id), mapping=item.to_hash())
                pipe.expire(image_key(task_id, item.image_id), RUNNING_TTL)
            pipe.execute()
        except RedisError as exc:
            log.warning("progress init failed task=%s: %s", task_id, exc)
        self.write_task(summary)

    def write_image(self, task_id: str, item: QueueItem) -> str | None:
        """Store the full QueueItem and announce it as an ``image`` event."""
        return self._write(task_id, image_key(task_id, item.image_id), item.to_hash(),
                           TaskEvent("", EventName.IMAGE, item.to_dict()))

    def write_task(self, summary: TaskSummary) -> str | None:
        return self._write(summary.task_id, task_key(summary.task_id), summary.to_hash(),
                           TaskEvent("", EventName.TASK, summary.public()))

    def finish_task(self, summary: TaskSummary, result: dict[str, Any]) -> str | None:
        """Final summary + ``done`` event; every key of the task now expires after the TTL."""
        task_id = summary.task_id
        image_keys = [image_key(task_id, i) for i in summary.image_ids]
        self._write(task_id, task_key(task_id), summary.to_hash(), TaskEvent("", EventName.TASK, summary.public()),
                    ttl=self.finished_ttl, extra_keys=image_keys)
        return self._write(task_id, task_key(task_id), {}, TaskEvent("", EventName.DONE, result),
                           ttl=self.finished_ttl, extra_keys=image_keys)

    def heartbeat(self, task_id: str) -> None:
        try:
            self.redis.hset(task_key(task_id), "heartbeat", f"{time.time():.3f}")
        except RedisError:
            pass

    def request_cancel(self, task_id: str) -> None:
        self.redis.set(cancel_key(task_id), "1", ex=RUNNING_TTL)

    def cancel_requested(self, task_id: str) -> bool:
        try:
            return bool(self.redis.exists(cancel_key(task_id)))
        except RedisError:
            return False

    # ------------------------------------------------------------ reading

    def snapshot(self, task_id: str, image_ids: list[int] | None = None) -> Snapshot:
        """(task summary, items, last event id) read in one transaction; (None, [], "0-0") when
        the task is not in Redis (expired, or Redis lost it). ``image_ids``: the task's, when the
        caller has its row (one round trip fewer)."""
        return self.snapshot_and_status(task_id, image_ids)[0]

    def snapshot_and_status(self, task_id: str, image_ids: list[int] | None = None,
                            status_key: str | None = None) -> tuple[Snapshot, str | None]:
        """``snapshot``, and the ``status`` field of the hash ``status_key`` (an RQ job's: the
        dead-worker check of a stream opening) read in the same transaction: one round trip
        instead of three (the ids, the snapshot, the status)."""
        if image_ids is None:
            image_ids = json.loads(self.redis.hget(task_key(task_id), "image_ids") or "[]")
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(task_key(task_id))
        for image_id in image_ids:
            pipe.hgetall(image_key(task_id, image_id))
        pipe.xrevrange(events_key(task_id), "+", "-", count=1)
        if status_key is not None:
            pipe.hget(status_key, "status")
        answers = pipe.execute()
        status = answers.pop() if status_key is not None else None
        raw_task, *raw_items, last = answers
        if not raw_task or not image_ids:
            return (None, [], "0-0"), status
        items = [QueueItem.from_hash(raw) for raw in raw_items if raw]
        return (TaskSummary.from_hash(raw_task), items, (last[0][0] if last else "0-0")), status

    def can_resume(self, task_id: str, after_id: str) -> bool:
        """True when every event after ``after_id`` is still in the stream (none trimmed away)."""
        return self._can_resume(events_key(task_id), after_id)

    def can_resume_account(self, account_id: int, after_id: str) -> bool:
        """The same for the account's stream."""
        return self._can_resume(account_events_key(account_id), after_id)

    def _can_resume(self, key: str, after_id: str) -> bool:
        first = self.redis.xrange(key, "-", "+", count=1)
        if not first:
            return False
        return event_id_tuple(first[0][0]) <= event_id_tuple(after_id) or after_id == "0-0"

    def account_last_id(self, account_id: int) -> str:
        """The id of the account stream's last event ("0-0" when it has none)."""
        last = self.redis.xrevrange(account_events_key(account_id), "+", "-", count=1)
        return last[0][0] if last else "0-0"
