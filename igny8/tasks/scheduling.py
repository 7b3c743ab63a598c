"""Fair scheduling of bulk tasks on RQ (DESIGN.md, "Fairness").

Clicks go straight to the RQ queue ``images``; workers take ``images`` before ``bulk``, so a
click starts on the next free worker slot. Bulk tasks are not all handed to RQ at once: they
wait in Redis, one list per account plus a ring of the accounts with bulk work waiting, and a
feeder keeps the RQ queue ``bulk`` about one job per worker long, taking the next task
round-robin across the ring. So one account's long backlog delays another account's run by at
most one task per worker.

Every change to the waiting structures is one Lua script (atomic). The set of waiting task ids
makes pushing idempotent (the sweep can push every waiting task again after a Redis restart) and
lets a cancel drop tasks without searching the lists (the feeder skips ids no longer in the set).
The database stays the truth: a bulk task is waiting while it is PENDING with no ``enqueued_at``.
The feeder runs when a run is created, whenever a bulk job ends, and at each sweep (``refeed``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from sqlalchemy import select, update

from ..extensions import db
from ..logs import event
from ..models import GenerationTask, utcnow
from ..progress.keys import PREFIX
from ..progress.schema import TaskState, TaskSummary
from ..redis_client import get_redis, get_rq_redis
from .jobs import BULK_QUEUE, IMAGES_QUEUE, job_timeout, process_bulk_task

RING = f"{PREFIX}:bulk:ring"  # list: accounts with bulk work waiting, in turn order
RING_MEMBERS = f"{PREFIX}:bulk:ring_members"  # set: the same accounts (no account twice in the ring)
WAITING = f"{PREFIX}:bulk:waiting"  # set: every waiting task id
ACCOUNT_LIST = f"{PREFIX}:bulk:account:"  # + account id: that account's waiting task ids, in order
LOST_GRACE = timedelta(seconds=20)
PUSH_CHUNK = 2000

# KEYS: ring, ring members, waiting set, the account's list. ARGV: account id, task ids...
_PUSH = """
local added = 0
for i = 2, #ARGV do
  if redis.call('SADD', KEYS[3], ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[4], ARGV[i])
    added = added + 1
  end
end
if added > 0 and redis.call('SADD', KEYS[2], ARGV[1]) == 1 then redis.call('RPUSH', KEYS[1], ARGV[1]) end
return added
"""

# KEYS: ring, ring members, waiting set, the RQ queue's list. ARGV: target length, account list prefix.
# Returns account, task, account, task ...: the next tasks, one account after the other.
_FEED = """
local want = tonumber(ARGV[1]) - redis.call('LLEN', KEYS[4])
local out = {}
while want > 0 do
  local account = redis.call('LPOP', KEYS[1])
  if not account then break end
  local list = ARGV[2] .. account
  local task = false
  while true do
    local candidate = redis.call('LPOP', list)
    if not candidate then break end
    if redis.call('SREM', KEYS[3], candidate) == 1 then task = candidate break end
  end
  if redis.call('LLEN', list) > 0 then redis.call('RPUSH', KEYS[1], account)
  else redis.call('SREM', KEYS[2], account) end
  if task then
    table.insert(out, account)
    table.insert(out, task)
    want = want - 1
  end
end
return out
"""


# A task that stepped aside goes back to the front: of its account's list, and its account of the ring.
# KEYS: ring, ring members, waiting set, the account's list. ARGV: account id, task id.
_PUSH_FRONT = """
if redis.call('SADD', KEYS[3], ARGV[2]) == 1 then redis.call('LPUSH', KEYS[4], ARGV[2]) end
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then redis.call('LREM', KEYS[1], 0, ARGV[1]) end
redis.call('LPUSH', KEYS[1], ARGV[1])
return 1
"""


class StepAside(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a bulk task's runner between two images when clicks wait for a worker."""


def _script(redis: Redis, source: str):  # noqa: ANN202 - redis-py's Script
    return redis.register_script(source)


def push(account_id: int, task_ids: Iterable[str]) -> int:
    """Add an account's tasks to the end of its waiting list (ids already waiting are skipped)."""
    redis, ids, added = get_redis(), list(task_ids), 0
    script = _script(redis, _PUSH)
    for start in range(0, len(ids), PUSH_CHUNK):
        added += script(keys=[RING, RING_MEMBERS, WAITING, f"{ACCOUNT_LIST}{account_id}"],
                        args=[account_id, *ids[start:start + PUSH_CHUNK]])
    return added


def drop(task_ids: Iterable[str]) -> None:
    """Tasks that must not be fed any more (cancelled): the feeder skips them."""
    ids = list(task_ids)
    for start in range(0, len(ids), PUSH_CHUNK):
        get_redis().srem(WAITING, *ids[start:start + PUSH_CHUNK])


def slots() -> int:
    """How many bulk jobs may wait in RQ: one per worker that serves the bulk queue (at least one)."""
    connection = get_rq_redis()
    return max(1, Worker.count(queue=Queue(BULK_QUEUE, connection=connection)))


def feed() -> list[str]:
    """Top the RQ queue ``bulk`` up to ``slots()`` waiting jobs, round-robin across accounts;
    returns the task ids enqueued. A Redis error leaves the tasks waiting (the sweep feeds again)."""
    connection = get_rq_redis()
    queue = Queue(BULK_QUEUE, connection=connection)
    try:
        popped = _script(get_redis(), _FEED)(keys=[RING, RING_MEMBERS, WAITING, queue.key],
                                             args=[slots(), ACCOUNT_LIST])
    except RedisError:
        return []
    task_ids = popped[1::2]
    if not task_ids:
        return []
    db.session.execute(update(GenerationTask).where(GenerationTask.id.in_(task_ids),
                                                    GenerationTask.state == TaskState.PENDING)
                       .values(enqueued_at=utcnow()).execution_options(synchronize_session=False))
    db.session.commit()
    totals = {row.id: row.total for row in db.session.execute(
        select(GenerationTask.id, GenerationTask.total).where(GenerationTask.id.in_(task_ids)))}
    fed = []
    for task_id in task_ids:
        try:  # sized as a click's job, for the worst case of one image after the other
            queue.enqueue(process_bulk_task, task_id, job_id=task_id,
                          job_timeout=job_timeout(totals.get(task_id, 1), 1),
                          description="Bulk run: one article's images", result_ttl=24 * 3600,
                          failure_ttl=7 * 24 * 3600)
        except RedisError:
            break  # enqueued_at is set and no job exists: the sweep puts it back in line
        fed.append(task_id)
    return fed


def promote(task: GenerationTask) -> bool:
    """A click on an article whose bulk task still waits: take it out of the line (atomically, so
    the feeder cannot take it too) and make it a click. False when the feeder already took it."""
    if task.kind != "bulk" or task.state != TaskState.PENDING or task.enqueued_at is not None:
        return False
    try:
        if not get_redis().srem(WAITING, task.id):
            return False
    except RedisError:
        return False
    task.kind, task.enqueued_at = "interactive", utcnow()
    db.session.commit()
    return True


def _lost(task_id: str) -> bool:
    from .reconcile import DEAD_JOB_STATUSES, _job_status

    status = _job_status(task_id)
    return status is None or status in DEAD_JOB_STATUSES


def refeed() -> int:
    """Put every waiting bulk task back in line (idempotent), and those whose RQ job was lost before it
    started (Redis restarted, a worker died); then feed. Returns how many were added back."""
    rows = db.session.execute(select(GenerationTask.id, GenerationTask.account_id, GenerationTask.enqueued_at)
                              .where(GenerationTask.kind == "bulk", GenerationTask.state == TaskState.PENDING)
                              .order_by(GenerationTask.created_at)).all()
    cutoff = utcnow() - LOST_GRACE
    lost = [row.id for row in rows if row.enqueued_at is not None and row.enqueued_at < cutoff and _lost(row.id)]
    if lost:
        db.session.execute(update(GenerationTask).where(GenerationTask.id.in_(lost), GenerationTask.state
                                                        == TaskState.PENDING).values(enqueued_at=None)
                           .execution_options(synchronize_session=False))
        db.session.commit()
    by_account: dict[int, list[str]] = defaultdict(list)
    for row in rows:
        if row.enqueued_at is None or row.id in lost:
            by_account[row.account_id].append(row.id)
    added = sum(push(account_id, ids) for account_id, ids in by_account.items())
    if added:
        event("bulk_refed", tasks=added, lost_jobs=len(lost))
    feed()
    return added


def clicks_waiting() -> bool:
    """Whether interactive jobs wait in RQ (a bulk task then steps aside after its current image)."""
    try:
        return Queue(IMAGES_QUEUE, connection=get_rq_redis()).count > 0
    except RedisError:
        return False


def step_aside(task: GenerationTask, summary: TaskSummary) -> dict[str, object]:
    """End this job of a bulk task between two images so the worker takes the waiting click: the
    task keeps its remaining images (queued), its counts so far are written, and it goes back to
    the front of the line, where the next job resumes it."""
    task.completed, task.failed, task.cost = summary.completed, summary.failed, summary.cost
    task.state, task.enqueued_at = TaskState.PENDING, None
    db.session.commit()
    try:
        _script(get_redis(), _PUSH_FRONT)(keys=[RING, RING_MEMBERS, WAITING, f"{ACCOUNT_LIST}{task.account_id}"],
                                          args=[task.account_id, task.id])
    except RedisError:
        pass  # the sweep puts it back in line (it is PENDING with no enqueued_at)
    event("bulk_task_stepped_aside", account=task.account_id, task=task.id, completed=task.completed)
    return {"task_id": task.id, "stepped_aside": True}
