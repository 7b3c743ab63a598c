"""The Redis keys of the progress record (DESIGN.md, "Redis layout"): builders and the parser
the stream hub needs. Every key is under one prefix and expires after its task ends."""

from __future__ import annotations

PREFIX = "igny8"
_TASK = f"{PREFIX}:task:"
_EVENTS_SUFFIX = ":events"


# One entry per progress write, for the stream hubs: {t: task id, i: the event's id in the task's
# stream, event, data}. Read within moments by every web process; kept long enough for a listener
# that falls a little behind (one that falls further reads the task streams instead).
NOTICES_KEY = f"{PREFIX}:notices"
NOTICES_MAXLEN = 10_000
# Where each notice is also published, with its id and the previous notice's: "<id>\n<previous
# id>\n<field>\n<value>..." (streaming/notices.py reads it).
NOTICES_CHANNEL = f"{PREFIX}:notices:live"

# Per account, the ``image`` and ``task`` events of all its tasks (the account stream, GET
# /api/v1/events): {t: task id, i: the event's id in the task's stream, event, data (with task_id,
# and run_id when the task has one)}. Capped: a client away longer than that takes a fresh snapshot.
ACCOUNT_PREFIX = f"{PREFIX}:account:"
ACCOUNT_EVENTS_SUFFIX = ":events"
ACCOUNT_EVENTS_MAXLEN = 5_000


def task_key(task_id: str) -> str:
    return f"{_TASK}{task_id}"


def image_key(task_id: str, image_id: int) -> str:
    return f"{_TASK}{task_id}:img:{image_id}"


def events_key(task_id: str) -> str:
    return f"{_TASK}{task_id}{_EVENTS_SUFFIX}"


def cancel_key(task_id: str) -> str:
    return f"{_TASK}{task_id}:cancel"


def account_events_key(account_id: int | str) -> str:
    return f"{ACCOUNT_PREFIX}{account_id}{ACCOUNT_EVENTS_SUFFIX}"


def latency_key(provider: str, model: str) -> str:
    return f"{PREFIX}:latency:{provider}:{model}"


def task_id_of_events_key(key: str) -> str | None:
    """The task id in an ``events_key``; None for any other key."""
    if key.startswith(_TASK) and key.endswith(_EVENTS_SUFFIX):
        return key[len(_TASK):-len(_EVENTS_SUFFIX)] or None
    return None
