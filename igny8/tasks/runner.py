"""Runs one task (the body of its RQ job): every image, one after another or a few at a time,
each ending ``generated`` or ``failed`` with a message; the task ends SUCCESS.

The runner orchestrates: the provider calls (``attempts``: the money rule), the storing of each image (on its
own threads, so the next call starts at once), the database writes (``outcomes``), the live progress (``live``)
and the heartbeat. Nothing is left stuck: an unexpected error ends every image it holds as failed.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from redis.exceptions import RedisError

from ..content.prompts import PromptRegistry
from ..extensions import db
from ..integrations.settings import image_generation_config, provider_api_key, safety_identifier
from ..logs import event
from ..media.convert import ImageDecodeError
from ..media.naming import seo_slug
from ..media.stores import MediaStore, StorageError, get_store
from ..media.variants import StoredVariant, store_image
from ..models import GenerationTask, Image, utcnow
from ..ops import metrics
from ..progress.latency import expected_seconds
from ..progress.schema import (
    CANCELLED,
    FAILED,
    PROMPT_READY,
    RECEIVED,
    REQUEST_SENT,
    STORED,
    ItemStatus,
    QueueItem,
    TaskState,
    partial_phase,
)
from ..providers import get_provider
from ..providers.base import GeneratedImage, ImageProvider, ImageRequest, PartialCallback, ProviderError
from ..providers.ratelimit import DEFAULT_LIMITS, RateLimiter
from ..redis_client import get_redis
from ..text import plain
from . import outcomes
from .announce import announce_finished
from .attempts import CallLog, ImageFailed, generate_with_retries
from .live import LiveTask
from .readout import items_from_db, progress_store, result_body, summary_from_task
from .scheduling import StepAside, clicks_waiting, step_aside

HEARTBEAT_SECONDS = 5.0


@dataclass(frozen=True)
class Tools:
    """What generating and storing an image needs, made once per task."""

    provider: ImageProvider
    registry: PromptRegistry
    store: MediaStore
    limiter: RateLimiter


class TaskRunner:
    """One run of one task."""

    def __init__(self, app: Flask, task_id: str) -> None:
        self.app, self.task_id = app, task_id
        self.progress = progress_store()
        self.account_id, self.content_title = 0, ""
        self.settings: dict[str, Any] = {}
        self.live: LiveTask | None = None
        self.storer: ThreadPoolExecutor | None = None  # the storing threads, while images run
        self.stop_heartbeat, self.bulk = threading.Event(), False

    # ------------------------------------------------------------ the task

    def run(self) -> dict[str, Any]:
        task = db.session.get(GenerationTask, self.task_id)
        if task is None or task.state != TaskState.PENDING:
            event("task_skipped", task=self.task_id, state=task.state if task else "missing")
            return {"task_id": self.task_id, "skipped": True}
        self.account_id, self.content_title = task.account_id, task.content.title if task.content else ""
        self.settings = image_generation_config(task.account_id)
        self.live = LiveTask(self.progress, summary_from_task(task), self.progress_items(task))
        resumed, self.bulk = task.started_at is not None, task.kind == "bulk"  # resumed: it stepped aside before
        if not resumed:
            metrics.task_started(task.kind, (utcnow() - task.created_at).total_seconds())
        outcomes.start_task(task)
        self.live.update(state=TaskState.PROGRESS, started_at=time.time())
        self.live.publish()
        event("task_started", account=self.account_id, task=self.task_id, images=len(self.live.items))
        threading.Thread(target=self.beat, daemon=True, name=f"heartbeat-{self.task_id}").start()
        try:
            error = self.run_images(outcomes.held_images(task) if resumed else task.image_ids)
        except StepAside:
            return step_aside(task, self.live.summary)
        except Exception as exc:  # the one top-level guard: record the failure, strand nothing
            current_app.logger.exception("task %s crashed", self.task_id)
            db.session.rollback()
            error = f"The batch stopped on an internal error ({exc.__class__.__name__}); queue the images again."
            for image_id in task.image_ids:
                self.fail_image(image_id, error, attempts=0, only_if_held=True)
        finally:
            self.stop_heartbeat.set()
        return self.finish(error)

    def progress_items(self, task: GenerationTask) -> list[QueueItem]:
        try:
            _summary, items, _last = self.progress.snapshot(self.task_id)
        except RedisError:
            items = []
        live = {item.image_id: item for item in items}  # missing (lost, or never written): from the rows
        return [live.get(item.image_id, item) for item in items_from_db(task)]

    def run_images(self, image_ids: list[int]) -> str | None:
        """Returns an error message when the task itself could not run."""
        try:
            tools = self.make_tools()
        except ProviderError as exc:
            for image_id in image_ids:
                self.fail_image(image_id, exc.message, attempts=0)
            return exc.message
        concurrency = max(1, int(self.settings.get("concurrency", 1)))
        # Converting and storing an image (already paid for) happens on the storing threads, so the
        # next provider call starts at once. Leaving the blocks waits for every call and every store.
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="store") as self.storer:
            if concurrency == 1:  # one image at a time at the provider, as in the seed
                for n, image_id in enumerate(image_ids):
                    if n and self.bulk and clicks_waiting():
                        raise StepAside  # after the stores in flight: the with block waits for them
                    self.run_image(tools, image_id)
            else:
                with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="image") as pool:
                    for future in [pool.submit(self.in_context, self.run_image, tools, i) for i in image_ids]:
                        future.result()
        self.storer = None
        return None

    def make_tools(self) -> Tools:
        name, config = self.settings["provider"], current_app.config
        base_url = {"openai": config.get("OPENAI_BASE_URL"), "runware": config.get("RUNWARE_BASE_URL")}.get(name)
        provider = get_provider(
            name, api_key=provider_api_key(self.account_id, name) if name != "local" else None,
            model=self.settings["model"], base_url=base_url, timeout=config["PROVIDER_TIMEOUT"],
            latency=config["LOCAL_PROVIDER_LATENCY"], safety_identifier=safety_identifier(self.account_id),
            allowed_http_hosts=config.get("ALLOWED_HTTP_HOSTS", ()),
            max_download_mb=config.get("MAX_DOWNLOAD_MB", 50.0),
        )
        limit = config.get("PROVIDER_LIMITS", {}).get(name) or DEFAULT_LIMITS[name]
        limiter = RateLimiter(get_redis(), name, self.account_id, limit, config["PROVIDER_TIMEOUT"] + 30)
        return Tools(provider, PromptRegistry(self.account_id), get_store(config), limiter)

    def in_context(self, function: Any, *args: Any) -> None:
        """``function(*args)`` on a pool thread, with its own app context and session."""
        with self.app.app_context():
            try:
                function(*args)
            finally:
                db.session.remove()

    # ------------------------------------------------------------ one image

    def run_image(self, tools: Tools, image_id: int) -> None:
        if self.progress.cancel_requested(self.task_id) or outcomes.cancel_flagged(self.task_id):
            outcomes.release_image(self.task_id, image_id)
            metrics.image_finished(self.settings["provider"], "cancelled", 0.0)
            self.live.set_item(image_id, status=ItemStatus.CANCELLED, phase=CANCELLED.name,
                               note="Cancelled before it started.")
            return
        image = outcomes.start_image(self.task_id, image_id)
        if image is None:
            return
        started = time.monotonic()
        self.live.update(current_image=self.live.item(image_id).index)
        self.live.publish()
        try:
            generated, attempts = self.generate(tools, image)
        except ImageFailed as exc:
            self.fail_image(image_id, exc.message, exc.attempts)
            return
        self.live.set_item(image_id, phase=RECEIVED.name, progress=RECEIVED.progress,
                           next_progress=RECEIVED.next_progress, expected_ms=RECEIVED.expected_ms)
        if self.storer is not None:
            self.storer.submit(self.in_context, self.save_by_id, tools, image_id, generated, attempts, started)
        else:
            self.save(tools, image, generated, attempts, started)

    def generate(self, tools: Tools, image: Image) -> tuple[GeneratedImage, int]:
        provider = tools.provider
        prompt = tools.registry.image_prompt(post_title=self.content_title, image_prompt=image.prompt,
                                             image_type=self.settings["image_type"])
        width, height = provider.size_for(image.type)
        request = ImageRequest(prompt=prompt, negative_prompt=tools.registry.negative_prompt, width=width,
                               height=height, model=self.settings["model"],
                               output_format="png" if self.settings["image_format"] == "png" else "webp",
                               partial_images=int(self.settings.get("partial_images", 0)),
                               quality=self.settings["quality"], background=self.settings["background"])
        expected_ms = int(expected_seconds(get_redis(), provider.name, request.model) * 1000)
        self.live.set_item(image.id, status=ItemStatus.PROCESSING, phase=PROMPT_READY.name,
                           progress=PROMPT_READY.progress, next_progress=PROMPT_READY.next_progress,
                           expected_ms=PROMPT_READY.expected_ms, started_at=time.time())

        image_id = image.id
        db.session.commit()  # ends the read: no database connection is held while the provider works
        sent = {"phase": REQUEST_SENT.name, "progress": REQUEST_SENT.progress,
                "next_progress": REQUEST_SENT.next_progress, "expected_ms": expected_ms}
        return generate_with_retries(
            provider, request, tools.limiter, CallLog(self.account_id, self.task_id, image_id),
            on_attempt=lambda _attempt: self.live.set_item(image_id, **sent),
            on_wait=lambda note: self.live.set_item(image_id, note=note),
            on_partial=self.partial_callback(image_id, request.partial_images))

    def partial_callback(self, image_id: int, partials: int) -> PartialCallback | None:
        if not partials:
            return None

        def on_partial(index: int, _data: bytes) -> None:
            name, progress = partial_phase(index, partials)
            self.live.set_item(image_id, phase=name, progress=progress, next_progress=REQUEST_SENT.next_progress)

        return on_partial

    def save_by_id(self, tools: Tools, image_id: int, generated: GeneratedImage, attempts: int,
                   started: float) -> None:
        """``save`` on a storing thread; an unexpected error still ends the image as failed (with
        its cost), never stuck in ``processing``."""
        try:
            self.save(tools, db.session.get(Image, image_id), generated, attempts, started)
        except Exception as exc:
            current_app.logger.exception("storing image %s failed", image_id)
            db.session.rollback()
            self.fail_image(image_id, f"The image could not be stored ({exc.__class__.__name__}).", attempts,
                            cost=generated.cost or 0.0)

    def save(self, tools: Tools, image: Image, generated: GeneratedImage, attempts: int, started: float) -> None:
        try:
            variants = self.store_variants(tools.store, image, generated)
        except (ImageDecodeError, StorageError) as exc:
            # The provider did produce (and bill) this image: its cost is recorded all the same.
            self.fail_image(image.id, str(exc), attempts, cost=generated.cost or 0.0)
            return
        desktop, mobile = outcomes.record_generated(image, generated, variants, attempts, tools.provider.placeholder)
        self.live.count(completed=1, cost=generated.cost or 0.0)
        metrics.image_finished(generated.provider, "generated", generated.cost or 0.0)
        self.live.set_item(image.id, status=ItemStatus.COMPLETED, phase=STORED.name, progress=STORED.progress,
                           next_progress=STORED.next_progress, image_url=desktop.url,
                           thumb_url=(mobile or desktop).url, placeholder=tools.provider.placeholder,
                           finished_at=time.time(), note=None)
        self.live.publish()
        event("image_generated", account=self.account_id, task=self.task_id, image=image.id,
              provider=generated.provider, attempts=attempts, ms=int((time.monotonic() - started) * 1000),
              bytes=image.bytes)

    def store_variants(self, store: MediaStore, image: Image, generated: GeneratedImage) -> list[StoredVariant]:
        return store_image(store, generated.data, fmt=self.settings["image_format"],
                           desktop=self.settings["desktop_enabled"], mobile=self.settings["mobile_enabled"],
                           slug=seo_slug(self.content_title, image.prompt, image.type, image.position),
                           prefix=f"a{self.account_id}", keep_original=generated.final)

    def fail_image(self, image_id: int, message: str, attempts: int, cost: float = 0.0,
                   only_if_held: bool = False) -> None:
        message = plain(message, 2000)  # stored, streamed and printed: no terminal escapes
        if not outcomes.record_failed(self.task_id, image_id, message, attempts, cost) and only_if_held:
            return
        metrics.image_finished(self.settings.get("provider", "unknown"), "failed", cost)
        self.live.count(failed=1, cost=cost)
        self.live.set_item(image_id, status=ItemStatus.FAILED, phase=FAILED.name, error=message,
                           finished_at=time.time(), note=None)
        self.live.publish()
        event("image_failed", level=30, account=self.account_id, task=self.task_id, image=image_id,
              attempts=attempts, error=message)

    # ------------------------------------------------------------ heartbeat and end

    def beat(self) -> None:
        """Heartbeat in the database (the truth the reconciler reads) and in Redis."""
        with self.app.app_context():
            while not self.stop_heartbeat.wait(HEARTBEAT_SECONDS):
                outcomes.beat(self.task_id)
                self.progress.heartbeat(self.task_id)
            db.session.remove()

    def finish(self, error: str | None) -> dict[str, Any]:
        task = db.session.get(GenerationTask, self.task_id)
        cancelled = task.cancelled or self.progress.cancel_requested(self.task_id)
        summary = self.live.summary
        outcomes.finish_task(task, summary, error, cancelled)
        self.live.update(state=task.state, error=error, cancelled=cancelled, finished_at=time.time())
        result = result_body(summary, list(self.live.items.values()))
        self.live.finish(result)
        event("task_finished", account=self.account_id, task=self.task_id, state=task.state,
              outcome=summary.outcome, completed=task.completed, failed=task.failed, cancelled=cancelled,
              cost=f"{task.cost:.4f}")
        announce_finished(task)
        return result
