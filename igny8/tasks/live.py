"""The runner's copy of a task's progress: the summary and one QueueItem per image, held in
memory and mirrored to Redis (``image`` and ``task`` events) and to the RQ job's meta. The
runner's threads change it only through ``set_item`` and ``count``, under one lock."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from rq import get_current_job

from ..progress.schema import QueueItem, TaskSummary
from ..progress.store import ProgressStore
from ..text import inert


class LiveTask:
    def __init__(self, store: ProgressStore, summary: TaskSummary, items: list[QueueItem]) -> None:
        self.store, self.summary = store, summary
        self.items = {item.image_id: item for item in items}
        self.lock = threading.Lock()
        self.published: TaskSummary | None = None  # what the last ``task`` event said

    @property
    def task_id(self) -> str:
        return self.summary.task_id

    def item(self, image_id: int) -> QueueItem:
        return self.items[image_id]

    def set_item(self, image_id: int, **fields: Any) -> None:
        """Change an image's progress; a change is published once (a write that changes nothing,
        such as ``note=None`` on an item without a note, sends no event)."""
        with self.lock:
            item = self.items[image_id]
            if "progress" in fields:  # a bar never moves backwards
                fields["progress"] = max(fields["progress"], item.progress or 0)
            changed = {k: v for k, v in fields.items() if getattr(item, k) != v}
            if not changed:
                return
            if "phase" in changed:  # phase_at changes with the phase only
                changed["phase_at"] = time.time()
            for key, value in changed.items():
                setattr(item, key, value)
            snapshot = dataclasses.replace(item)
        self.store.write_image(self.task_id, snapshot)

    def update(self, **fields: Any) -> None:
        """Change the summary (published by the next ``publish``)."""
        with self.lock:
            for key, value in fields.items():
                setattr(self.summary, key, value)

    def count(self, *, completed: int = 0, failed: int = 0, cost: float = 0.0) -> None:
        with self.lock:
            self.summary.completed += completed
            self.summary.failed += failed
            self.summary.cost = (self.summary.cost or 0.0) + cost

    def publish(self) -> None:
        """Publish the summary if it changed since it was last published."""
        with self.lock:
            summary = dataclasses.replace(self.summary, image_ids=list(self.summary.image_ids))
            if summary == self.published:
                return
            self.published = summary
        if self.store.write_task(summary) is None:
            with self.lock:  # Redis was away: the next write sends it again (a restart lost the hash)
                if self.published is summary:
                    self.published = None
        self.save_job_meta(summary)

    def finish(self, result: dict[str, Any]) -> None:
        """The final summary and the ``done`` event (the final ``task`` event is sent once, here)."""
        self.save_job_meta(self.summary)
        self.store.finish_task(self.summary, result)

    def save_job_meta(self, summary: TaskSummary) -> None:
        job = get_current_job()
        if job is None:
            return
        # rq-dashboard renders some of the meta as HTML: what a writer typed goes in without
        # markup characters (and the dashboard's job page escapes)
        job.meta["progress"] = {**summary.job_meta(), "content_title": inert(summary.content_title or "", 120)}
        try:
            job.save_meta()
        except RedisError as exc:  # the dashboard's copy only: the database and stream go on
            current_app.logger.warning("job meta not saved task=%s: %s", self.task_id, exc)
