"""The progress record, in one place: its states, the phases of a bar, the per-image queue item,
the task summary. The Redis keys that hold them are in ``keys``, the events that announce their
changes in ``events``.

Everything that writes progress (the web request that queues a task, the runner, the
reconciler) and everything that reads it (the JSON API, the streams, the modal's templates, the
CLI) goes through these types. To add a field to the bar: add it to ``QueueItem``, set it in the
runner, show it in ``templates/writer/_queue_item.html``. To add a phase: add it to ``PHASES``
and enter it from the runner; its label reaches the template through ``phase_label``.

Words: a **task** is one run of a set of images (one ``GenerationTask`` row, one RQ job, whose id
it shares; the UI calls it a *batch*). Its **queue** is its ordered list of images, one
``QueueItem`` each (DESIGN.md's ImageQueueItem). A **job** is only ever RQ's job object, and the
RQ queue the job waits in is always called the *RQ queue*.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, Self

# ---------------------------------------------------------------- states


class TaskState(StrEnum):
    """A task's state (the values of DESIGN.md's task_progress ``state``)."""

    PENDING = "PENDING"
    PROGRESS = "PROGRESS"
    SUCCESS = "SUCCESS"  # it ran to the end, even with every image failed
    FAILURE = "FAILURE"  # the task itself could not run (or its worker died)


FINAL_STATES = (TaskState.SUCCESS, TaskState.FAILURE)
RUNNING_STATES = (TaskState.PENDING, TaskState.PROGRESS)


class Outcome(StrEnum):
    """How a task that has ended went: all generated, some, none, or stopped by the writer."""

    GENERATED = "generated"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ImageStatus(StrEnum):
    """An image's status in the database."""

    PENDING = "pending"
    QUEUED = "queued"
    PROCESSING = "processing"
    GENERATED = "generated"
    FAILED = "failed"


HELD_STATUSES = (ImageStatus.QUEUED, ImageStatus.PROCESSING)  # a running task has the image


class ItemStatus(StrEnum):
    """A queue item's status, as users see it. An item of a cancelled task that never started is
    ``cancelled`` (its image is back to pending in the database)."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ITEM_STATUS_OF = {ImageStatus.PENDING: ItemStatus.PENDING, ImageStatus.QUEUED: ItemStatus.PENDING,
                  ImageStatus.PROCESSING: ItemStatus.PROCESSING, ImageStatus.GENERATED: ItemStatus.COMPLETED,
                  ImageStatus.FAILED: ItemStatus.FAILED}


# ---------------------------------------------------------------- the phases of a bar


@dataclass(frozen=True)
class Phase:
    """One real step of an image. The bar shows ``progress`` when the phase begins and eases
    toward ``next_progress`` over ``expected_ms`` (None: the measured provider latency)."""

    name: str
    progress: int
    label: str
    next_progress: int | None = None
    expected_ms: int | None = None


QUEUED = Phase("queued", 0, "Waiting in queue")
PROMPT_READY = Phase("prompt_ready", 5, "Preparing prompt", next_progress=10, expected_ms=200)
REQUEST_SENT = Phase("request_sent", 10, "Generating", next_progress=80)  # partial previews in between
RECEIVED = Phase("received", 85, "Saving", next_progress=99, expected_ms=1000)
STORED = Phase("stored", 100, "Done", next_progress=100)
FAILED = Phase("failed", 0, "Failed")
CANCELLED = Phase("cancelled", 0, "Cancelled")
NOT_STARTED = Phase("pending", 0, "Not started")  # an item rebuilt from a pending image row
PHASES = {phase.name: phase for phase in (QUEUED, PROMPT_READY, REQUEST_SENT, RECEIVED, STORED, FAILED,
                                           CANCELLED, NOT_STARTED)}
PARTIAL_PREFIX = "partial_"


def partial_phase(index: int, partials: int) -> tuple[str, int]:
    """(name, progress) of the ``index``-th (from 0) of ``partials`` previews: an even share of
    the way from request_sent to its next phase."""
    span = REQUEST_SENT.next_progress - REQUEST_SENT.progress
    return f"{PARTIAL_PREFIX}{index + 1}", REQUEST_SENT.progress + int(span * (index + 1) / (partials + 1))


def phase_label(name: str | None) -> str:
    """The words under a bar; a partial preview (or any phase without words) says Generating."""
    phase = PHASES.get(name or QUEUED.name)
    return phase.label if phase is not None else REQUEST_SENT.label


def phase_of_status(status: str) -> str:
    """The phase of an item rebuilt from its image row (Redis no longer has the live one)."""
    return STORED.name if status == ImageStatus.GENERATED else status


# ---------------------------------------------------------------- records and their hashes


def _kind(annotation: str) -> type:
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("list", list)):
        if annotation.startswith(name):
            return kind
    return str


class _Record:
    """The Redis hash and JSON forms every record of this module shares (its fields typed
    int, float, bool, list or str, optional or not)."""

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Self:
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in raw:
                continue
            value, kind = raw[f.name], _kind(str(f.type))
            if kind is bool:
                values[f.name] = value == "true"
            elif kind is list:
                values[f.name] = json.loads(value or "[]")
            elif not value:
                values[f.name] = 0 if f.type in ("int", "float") else None
            elif kind is int:
                values[f.name] = int(float(value))
            elif kind is float:
                values[f.name] = float(value)
            else:
                values[f.name] = value
        return cls(**values)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_hash(self) -> dict[str, str]:
        """Hash values as strings; None becomes "" so a field can be cleared."""
        return {k: "" if v is None else (json.dumps(v) if isinstance(v, (list, dict, bool)) else str(v))
                for k, v in asdict(self).items()}


@dataclass
class QueueItem(_Record):
    """One image of a task's queue: DESIGN.md's ImageQueueItem (the first ten fields) plus what
    the bar needs while it runs. ``index`` counts from 1."""

    image_id: int
    index: int
    label: str
    type: str
    position: int
    content_title: str
    status: str = ItemStatus.PENDING
    progress: int = 0
    image_url: str | None = None
    error: str | None = None
    phase: str = QUEUED.name
    phase_at: float | None = None  # when the phase began (the bar's easing starts there)
    next_progress: int | None = None
    expected_ms: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    thumb_url: str | None = None
    placeholder: bool = False  # drawn by the offline renderer, not by an AI
    note: str | None = None  # a passing word, e.g. "Trying again in 3 s."

    @classmethod
    def from_image(cls, image: Any, index: int, content_title: str) -> QueueItem:
        """The item of an image row as the database has it (no live detail)."""
        status = ITEM_STATUS_OF.get(image.status, image.status)
        return cls(image_id=image.id, index=index, label=image.label, type=image.type, position=image.position,
                   content_title=content_title, status=status,
                   progress=100 if image.status == ImageStatus.GENERATED else 0, image_url=image.image_url,
                   error=image.error)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body (``image`` events, ``queue`` lists)."""
        return asdict(self)

    def result(self) -> dict[str, Any]:
        """The per-image result of DESIGN.md."""
        return {"image_id": self.image_id, "status": self.status, "image_url": self.image_url, "error": self.error}

    @property
    def shown_progress(self) -> int:
        return 100 if self.status == ItemStatus.COMPLETED else (self.progress or 0)

    @property
    def phase_label(self) -> str:
        return phase_label(self.phase)


@dataclass
class TaskSummary(_Record):
    """A task's counts and times: the ``task`` hash in Redis, the ``task`` event's body, and the
    source of the task_progress answer."""

    task_id: str
    state: str = TaskState.PENDING
    total_images: int = 0
    current_image: int = 0  # the index of the item the runner started last
    completed: int = 0
    failed: int = 0
    cancelled: bool = False
    account_id: int = 0
    content_id: int | None = None
    content_title: str = ""
    cost: float = 0.0
    error: str | None = None
    image_ids: list[int] = field(default_factory=list)
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat: float | None = None  # the runner's last sign of life (Redis only)
    run_id: str | None = None  # the bulk run the task belongs to, None for a click

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def outcome(self) -> str | None:
        """One of Outcome once the task has ended, None while it runs."""
        if not self.finished:
            return None
        if self.cancelled:
            return Outcome.CANCELLED
        if not self.completed:
            return Outcome.FAILED
        return Outcome.GENERATED if self.completed >= self.total_images else Outcome.PARTIAL

    @property
    def duration_seconds(self) -> float | None:
        if not (self.started_at and self.finished_at):
            return None
        return round(self.finished_at - self.started_at, 3)

    def public(self) -> dict[str, Any]:
        """The ``task`` event body: the counts a client needs, nothing internal."""
        return {"task_id": self.task_id, "state": self.state, "outcome": self.outcome,
                "total_images": self.total_images, "current_image": self.current_image,
                "completed": self.completed, "failed": self.failed, "cancelled": self.cancelled,
                "content_id": self.content_id, "content_title": self.content_title, "cost": self.cost,
                "error": self.error, "started_at": self.started_at, "finished_at": self.finished_at,
                "run_id": self.run_id}

    def job_meta(self) -> dict[str, Any]:
        """What rq-dashboard shows of the task's progress (the job's ``meta``)."""
        return {"state": str(self.state), "total_images": self.total_images, "current_image": self.current_image,
                "completed": self.completed, "failed": self.failed}
