"""The Redis progress schema: one hash per task, one hash per image, one event stream per task.

Every change is written in one MULTI/EXEC: the hash update *and* an entry in the task's Redis
stream. The stream is both the change notification and the log that SSE clients resume from:
a reader takes a snapshot together with the stream's last id in one transaction, then blocks on
XREAD after that id, so no update can fall between the snapshot and the live events, and
``Last-Event-ID`` is simply a stream id.

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

log = logging.getLogger(__name__)

PREFIX = "igny8"
STREAM_MAXLEN = 2000
RUNNING_TTL = 7 * 24 * 3600  # safety net; finished tasks get the shorter PROGRESS_TTL
TASK_FIELDS_INT = ("total_images", "current_image", "completed", "failed", "account_id", "content_id")


def task_key(task_id: str) -> str:
    return f"{PREFIX}:task:{task_id}"


def image_key(task_id: str, image_id: int) -> str:
    return f"{PREFIX}:task:{task_id}:img:{image_id}"


def events_key(task_id: str) -> str:
    return f"{PREFIX}:task:{task_id}:events"


def cancel_key(task_id: str) -> str:
    return f"{PREFIX}:task:{task_id}:cancel"


def _flat(fields: dict[str, Any]) -> dict[str, str]:
    """Hash values as strings; None becomes "" so a field can be cleared."""
    return {k: "" if v is None else (json.dumps(v) if isinstance(v, (list, dict, bool)) else str(v))
            for k, v in fields.items()}


def _item_from_hash(raw: dict[str, str]) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("image_id", "index", "position", "progress", "next_progress", "expected_ms", "attempts"):
            item[key] = int(float(value)) if value else 0
        elif key in ("placeholder",):
            item[key] = value == "true"
        elif key.endswith("_at"):
            item[key] = float(value) if value else None
        else:
            item[key] = value or None
    return item


def _task_from_hash(raw: dict[str, str]) -> dict[str, Any]:
    task: dict[str, Any] = dict(raw)
    for key in TASK_FIELDS_INT:
        task[key] = int(raw[key]) if raw.get(key) else 0
    task["cost"] = float(raw.get("cost") or 0)
    task["cancelled"] = raw.get("cancelled") == "true"
    task["outcome"] = raw.get("outcome") or None
    task["image_ids"] = json.loads(raw.get("image_ids") or "[]")
    return task


class ProgressStore:
    """Writes and reads the progress of tasks. One instance per process (it holds no state
    but the Redis client, whose pool is shared)."""

    def __init__(self, redis: Redis, finished_ttl: int = 24 * 3600) -> None:
        self.redis = redis
        self.finished_ttl = finished_ttl

    # ------------------------------------------------------------ writing

    def _write(self, task_id: str, key: str, fields: dict[str, Any], event: str,
               payload: dict[str, Any], ttl: int = RUNNING_TTL, extra_keys: Iterable[str] = ()) -> str | None:
        """HSET + XADD (+ EXPIRE) atomically; returns the event id, or None if Redis is down."""
        try:
            pipe = self.redis.pipeline(transaction=True)
            if fields:
                pipe.hset(key, mapping=_flat(fields))
            pipe.xadd(events_key(task_id), {"event": event, "data": json.dumps(payload)},
                      maxlen=STREAM_MAXLEN, approximate=True)
            for k in (key, events_key(task_id), *extra_keys):
                pipe.expire(k, ttl)
            result = pipe.execute()
        except RedisError as exc:
            log.warning("progress write failed task=%s event=%s: %s", task_id, event, exc)
            return None
        return result[1 if fields else 0]

    def init_task(self, task_id: str, summary: dict[str, Any], items: list[dict[str, Any]]) -> None:
        """Create the task hash and one hash per image (called by the web request, before enqueue)."""
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(task_key(task_id), events_key(task_id))
            for item in items:
                pipe.hset(image_key(task_id, item["image_id"]), mapping=_flat(item))
                pipe.expire(image_key(task_id, item["image_id"]), RUNNING_TTL)
            pipe.execute()
        except RedisError as exc:
            log.warning("progress init failed task=%s: %s", task_id, exc)
        self.write_task(task_id, summary)

    def write_image(self, task_id: str, item: dict[str, Any]) -> str | None:
        """Store the full ImageQueueItem and announce it as an ``image`` event."""
        return self._write(task_id, image_key(task_id, item["image_id"]), item, "image", item)

    def write_task(self, task_id: str, summary: dict[str, Any]) -> str | None:
        return self._write(task_id, task_key(task_id), summary, "task", public_summary(summary))

    def finish_task(self, task_id: str, summary: dict[str, Any], result: dict[str, Any]) -> str | None:
        """Final summary + ``done`` event; every key of the task now expires after the TTL."""
        image_keys = [image_key(task_id, i) for i in summary.get("image_ids", [])]
        self._write(task_id, task_key(task_id), summary, "task", public_summary(summary),
                    ttl=self.finished_ttl, extra_keys=image_keys)
        return self._write(task_id, task_key(task_id), {}, "done", result, ttl=self.finished_ttl,
                           extra_keys=image_keys)

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

    def snapshot(self, task_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str]:
        """(task summary, items, last event id) read in one transaction; (None, [], "0-0") when
        the task is not in Redis (expired, or Redis lost it)."""
        image_ids = json.loads(self.redis.hget(task_key(task_id), "image_ids") or "[]")
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(task_key(task_id))
        for image_id in image_ids:
            pipe.hgetall(image_key(task_id, image_id))
        pipe.xrevrange(events_key(task_id), "+", "-", count=1)
        raw_task, *raw_items, last = pipe.execute()
        if not raw_task or not image_ids:
            return None, [], "0-0"
        items = [_item_from_hash(raw) for raw in raw_items if raw]
        return _task_from_hash(raw_task), items, (last[0][0] if last else "0-0")

    def can_resume(self, task_id: str, after_id: str) -> bool:
        """True when every event after ``after_id`` is still in the stream (none trimmed away)."""
        first = self.redis.xrange(events_key(task_id), "-", "+", count=1)
        if not first:
            return False
        return _id_tuple(first[0][0]) <= _id_tuple(after_id) or after_id == "0-0"


def _id_tuple(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def valid_event_id(value: str | None) -> bool:
    if not value:
        return False
    ms, sep, seq = value.partition("-")
    return ms.isdigit() and (not sep or seq.isdigit()) and len(value) < 40


def public_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The task event body: the counts a client needs, nothing internal."""
    keys = ("task_id", "state", "outcome", "total_images", "current_image", "completed", "failed", "cancelled",
            "content_id", "content_title", "cost", "error", "started_at", "finished_at")
    return {k: summary.get(k) for k in keys if k in summary}


# ---------------------------------------------------------------- measured provider latency

DEFAULT_EXPECTED_SECONDS = {"openai": 25.0, "runware": 6.0, "local": 1.0}


def latency_key(provider: str, model: str) -> str:
    return f"{PREFIX}:latency:{provider}:{model}"


def record_latency(redis: Redis, provider: str, model: str, seconds: float) -> None:
    """Keep the last 20 call durations of a provider+model (feeds the modal's easing)."""
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.lpush(latency_key(provider, model), f"{seconds:.3f}")
        pipe.ltrim(latency_key(provider, model), 0, 19)
        pipe.execute()
    except RedisError:
        pass


def expected_seconds(redis: Redis, provider: str, model: str) -> float:
    """Median of the recent durations, else a per-provider default."""
    try:
        values = sorted(float(v) for v in redis.lrange(latency_key(provider, model), 0, -1))
    except RedisError:
        values = []
    if not values:
        return DEFAULT_EXPECTED_SECONDS.get(provider, 10.0)
    return values[len(values) // 2]
