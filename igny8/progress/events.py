"""The events of a task's Redis stream, and the signals streams pass along with them."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, NamedTuple


class EventName(StrEnum):
    """The events of a task's stream. The first four are in Redis (and on the wire); the others
    are signals between the hub, the stream and its formatter, never stored."""

    SNAPSHOT = "snapshot"  # the whole task state (the body of task_progress)
    IMAGE = "image"  # one QueueItem changed
    TASK = "task"  # the TaskSummary changed
    DONE = "done"  # the final result; the stream ends
    KEEPALIVE = "keepalive"  # nothing moved for a while
    LOST = "lost"  # Redis stayed away too long (or the task is gone): reconnect
    REVOKED = "revoked"  # the credential that opened the stream is gone
    RESYNC = "resync"  # the events after the subscriber's id are gone: take a fresh snapshot
    CLOSING = "closing"  # this process stops serving streams: end now (the client reconnects)


class TaskEvent(NamedTuple):
    """One event of a task: its stream entry id ("" for signals), name and JSON body."""

    id: str
    name: str
    data: dict[str, Any]
    raw: str | None = None  # ``data`` as the JSON text it was read from (sent on as it is)
    # An account stream's event: its task, and its id in that task's stream (None otherwise)
    task_id: str | None = None
    task_event_id: str | None = None

    @classmethod
    def from_entry(cls, entry_id: str, fields: dict[str, str]) -> TaskEvent:
        """An entry of a task's or an account's Redis stream (as ProgressStore writes them)."""
        return cls(entry_id, fields["event"], json.loads(fields["data"]), fields["data"], fields.get("t"),
                   fields.get("i"))

    def json(self) -> str:
        """``data`` as compact JSON text."""
        return self.raw if self.raw is not None else json.dumps(self.data, separators=(",", ":"))

    def entry(self) -> dict[str, str]:
        return {"event": self.name, "data": self.json()}


KEEPALIVE = TaskEvent("", EventName.KEEPALIVE, {})
LOST = TaskEvent("", EventName.LOST, {})
REVOKED = TaskEvent("", EventName.REVOKED, {})
RESYNC = TaskEvent("", EventName.RESYNC, {})
CLOSING = TaskEvent("", EventName.CLOSING, {})


def event_id_tuple(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def valid_event_id(value: str | None) -> bool:
    if not value:
        return False
    ms, sep, seq = value.partition("-")
    return ms.isdigit() and (not sep or seq.isdigit()) and len(value) < 40
