"""Runs one batch (the body of the RQ job): every image of a task, one after another or a few
at a time, each ending ``generated`` or ``failed`` with a message; the task ends SUCCESS.

Money rule: a provider call is retried only when the provider certainly did not produce the
image (429, 5xx answer, connection refused). A timeout or a broken answer is *not* retried,
since the image may have been made and billed. Attempts and cost are recorded on the image.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Flask, current_app
from redis.exceptions import RedisError
from rq import get_current_job

from ..content.prompts import PromptRegistry
from ..extensions import db
from ..integrations.settings import image_generation_config, provider_api_key, safety_identifier
from ..logs import event
from ..media.stores import ImageDecodeError, StorageError, StoredVariant, get_store, seo_slug, store_image
from ..models import GenerationTask, Image, utcnow
from ..progress.store import ProgressStore, expected_seconds, record_latency
from ..providers import get_provider
from ..providers.base import GeneratedImage, ImageProvider, ImageRequest, ProviderError
from ..providers.ratelimit import DEFAULT_LIMITS, RateLimiter
from ..redis_client import get_redis
from ..text import inert, plain
from .state import items_from_db, outcome_of, progress_store, result_body, summary_from_task

MAX_ATTEMPTS = 3
BACKOFF_SECONDS = (1.0, 3.0)
HEARTBEAT_SECONDS = 5.0


class ImageFailed(Exception):
    def __init__(self, message: str, attempts: int = 0) -> None:
        super().__init__(message)
        self.message, self.attempts = message, attempts


class BatchRunner:
    """One run of one task. Holds the per-image items in memory and mirrors them to Redis."""

    def __init__(self, app: Flask, task_id: str) -> None:
        self.app, self.task_id = app, task_id
        self.progress: ProgressStore = progress_store()
        self.lock = threading.Lock()
        self.stop_heartbeat = threading.Event()
        self.storer: ThreadPoolExecutor | None = None
        self.published_summary: dict[str, Any] | None = None  # what the last ``task`` event said

    # ------------------------------------------------------------ the batch

    def run(self) -> dict[str, Any]:
        task = db.session.get(GenerationTask, self.task_id)
        if task is None or task.state != "PENDING":
            event("task_skipped", task=self.task_id, state=task.state if task else "missing")
            return {"task_id": self.task_id, "skipped": True}
        self.account_id, self.content_title = task.account_id, task.content.title if task.content else ""
        self.settings = image_generation_config(task.account_id)
        self.summary = summary_from_task(task)
        self.items = {item["image_id"]: item for item in self.progress_items(task)}
        task.state, task.started_at, task.heartbeat_at = "PROGRESS", utcnow(), utcnow()
        db.session.commit()
        self.summary.update(state="PROGRESS", started_at=time.time())
        self.write_summary()
        event("task_started", account=self.account_id, task=self.task_id, images=len(self.items))
        heartbeat = threading.Thread(target=self.beat, daemon=True, name=f"heartbeat-{self.task_id}")
        heartbeat.start()
        try:
            error = self.run_images(task.image_ids)
        except Exception as exc:  # the one top-level guard: record the failure, strand nothing
            current_app.logger.exception("task %s crashed", self.task_id)
            db.session.rollback()
            error = f"The batch stopped on an internal error ({exc.__class__.__name__}); queue the images again."
            for image_id in task.image_ids:
                self.fail_image(image_id, error, attempts=0, only_if_held=True)
        finally:
            self.stop_heartbeat.set()
        return self.finish(error)

    def progress_items(self, task: GenerationTask) -> list[dict[str, Any]]:
        try:
            _summary, items, _last = self.progress.snapshot(self.task_id)
        except RedisError:
            items = []
        return items or items_from_db(task)  # Redis lost the keys: rebuild from the rows

    def run_images(self, image_ids: list[int]) -> str | None:
        """Returns an error message when the task itself could not run."""
        try:
            provider = self.make_provider()
        except ProviderError as exc:
            for image_id in image_ids:
                self.fail_image(image_id, exc.message, attempts=0)
            return exc.message
        concurrency = max(1, int(self.settings.get("concurrency", 1)))
        # Converting and storing an image (already paid for) happens on the storing threads, so the
        # next provider call starts at once. Leaving the blocks waits for every call and every store.
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="store") as self.storer:
            if concurrency == 1:  # one image at a time at the provider, as in the seed
                for image_id in image_ids:
                    self.run_image(provider, image_id)
            else:
                with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="image") as pool:
                    for future in [pool.submit(self.run_image_in_context, provider, i) for i in image_ids]:
                        future.result()
        self.storer = None
        return None

    def make_provider(self) -> ImageProvider:
        name, model = self.settings["provider"], self.settings["model"]
        config = current_app.config
        base_url = {"openai": config.get("OPENAI_BASE_URL"), "runware": config.get("RUNWARE_BASE_URL")}.get(name)
        provider = get_provider(
            name, api_key=provider_api_key(self.account_id, name) if name != "local" else None, model=model,
            base_url=base_url, timeout=config["PROVIDER_TIMEOUT"], latency=config["LOCAL_PROVIDER_LATENCY"],
            safety_identifier=safety_identifier(self.account_id),
            allowed_http_hosts=config.get("ALLOWED_HTTP_HOSTS", ()),
            max_download_mb=config.get("MAX_DOWNLOAD_MB", 50.0),
        )
        self.placeholder = provider.placeholder
        self.registry = PromptRegistry(self.account_id)
        self.store = get_store(config)
        limit = config.get("PROVIDER_LIMITS", {}).get(name) or DEFAULT_LIMITS[name]
        self.limiter = RateLimiter(get_redis(), name, self.account_id, limit, config["PROVIDER_TIMEOUT"] + 30)
        return provider

    def run_image_in_context(self, provider: ImageProvider, image_id: int) -> None:
        with self.app.app_context():
            try:
                self.run_image(provider, image_id)
            finally:
                db.session.remove()

    # ------------------------------------------------------------ one image

    def run_image(self, provider: ImageProvider, image_id: int) -> None:
        if self.progress.cancel_requested(self.task_id) or self.task_cancelled():
            self.release_image(image_id)
            return
        image = db.session.get(Image, image_id)
        if image is None or image.status != "queued" or image.task_id != self.task_id:
            return  # deleted, or reconciled away meanwhile: nothing to do, nothing to pay
        image.status, image.error = "processing", None
        db.session.commit()
        started = time.monotonic()
        with self.lock:
            self.summary["current_image"] = self.items[image_id]["index"]
        self.write_summary()
        try:
            generated, attempts = self.generate(provider, image)
        except ImageFailed as exc:
            self.fail_image(image_id, exc.message, exc.attempts)
            return
        self.set_item(image_id, phase="received", progress=85, next_progress=99, expected_ms=1000)
        if self.storer is not None:
            self.storer.submit(self.save_in_context, image_id, generated, attempts, started)
        else:
            self.save(image, generated, attempts, started)

    def save(self, image: Image, generated: GeneratedImage, attempts: int, started: float) -> None:
        try:
            variants = self.store_variants(image, generated)
        except (ImageDecodeError, StorageError) as exc:
            # The provider did produce (and bill) this image: its cost is recorded all the same.
            self.fail_image(image.id, str(exc), attempts, cost=generated.cost or 0.0)
            return
        self.mark_generated(image, generated, variants, attempts, time.monotonic() - started)

    def save_in_context(self, image_id: int, generated: GeneratedImage, attempts: int, started: float) -> None:
        """``save`` on the storing thread, with its own session; an unexpected error still ends
        the image as failed (with its cost), never stuck in ``processing``."""
        with self.app.app_context():
            try:
                self.save(db.session.get(Image, image_id), generated, attempts, started)
            except Exception as exc:
                current_app.logger.exception("storing image %s failed", image_id)
                db.session.rollback()
                self.fail_image(image_id, f"The image could not be stored ({exc.__class__.__name__}).", attempts,
                                cost=generated.cost or 0.0)
            finally:
                db.session.remove()

    def generate(self, provider: ImageProvider, image: Image) -> tuple[GeneratedImage, int]:
        prompt = self.registry.image_prompt(post_title=self.content_title, image_prompt=image.prompt,
                                            image_type=self.settings["image_type"])
        width, height = provider.size_for(image.type)
        request = ImageRequest(prompt=prompt, negative_prompt=self.registry.negative_prompt, width=width,
                               height=height, model=self.settings["model"],
                               output_format="png" if self.settings["image_format"] == "png" else "webp",
                               partial_images=int(self.settings.get("partial_images", 0)),
                               quality=self.settings["quality"], background=self.settings["background"])
        expected_ms = int(expected_seconds(get_redis(), provider.name, request.model) * 1000)
        self.set_item(image.id, status="processing", phase="prompt_ready", progress=5, next_progress=10,
                      expected_ms=200, started_at=time.time())
        attempts = 0
        while True:
            attempts += 1
            self.set_item(image.id, phase="request_sent", progress=10, next_progress=80, expected_ms=expected_ms)
            call_started = time.monotonic()
            try:
                with self.limiter.slot():
                    generated = provider.generate(request, self.partial_callback(image.id, request.partial_images))
            except ProviderError as exc:
                event("provider_call", level=30, account=self.account_id, task=self.task_id, image=image.id,
                      provider=provider.name, outcome=exc.kind, attempt=attempts,
                      ms=int((time.monotonic() - call_started) * 1000))
                if not exc.retryable or attempts >= MAX_ATTEMPTS:
                    raise ImageFailed(exc.message, attempts) from exc
                self.wait_before_retry(image.id, exc, attempts)
                continue
            seconds = time.monotonic() - call_started
            record_latency(get_redis(), provider.name, request.model, seconds)
            event("provider_call", account=self.account_id, task=self.task_id, image=image.id,
                  provider=provider.name, model=request.model, outcome="ok", attempt=attempts, ms=int(seconds * 1000))
            return generated, attempts

    def wait_before_retry(self, image_id: int, exc: ProviderError, attempts: int) -> None:
        wait = exc.retry_after if exc.retry_after is not None else BACKOFF_SECONDS[min(attempts, 2) - 1]
        wait = min(max(wait, 0.0), 60.0)
        if exc.kind == "rate_limit":
            self.limiter.cool_down(wait)
        self.set_item(image_id, note=f"{exc.message} Trying again in {wait:.0f} s.")
        time.sleep(wait)
        self.set_item(image_id, note=None)

    def partial_callback(self, image_id: int, partials: int):  # noqa: ANN201
        if not partials:
            return None

        def on_partial(index: int, _data: bytes) -> None:
            progress = 10 + int(70 * (index + 1) / (partials + 1))
            self.set_item(image_id, phase=f"partial_{index + 1}", progress=progress, next_progress=80)

        return on_partial

    def store_variants(self, image: Image, generated: GeneratedImage) -> list[StoredVariant]:
        slug = seo_slug(self.content_title, image.prompt, image.type, image.position)
        return store_image(self.store, generated.data, fmt=self.settings["image_format"],
                           desktop=self.settings["desktop_enabled"], mobile=self.settings["mobile_enabled"],
                           slug=slug, prefix=f"a{self.account_id}")

    def mark_generated(self, image: Image, generated: GeneratedImage, variants: list[StoredVariant],
                       attempts: int, seconds: float) -> None:
        desktop = next((v for v in variants if v.variant == "desktop"), variants[0])
        mobile = next((v for v in variants if v.variant == "mobile"), None)
        image.status, image.error, image.task_id, image.generated_at = "generated", None, None, utcnow()
        image.image_url, image.desktop_path = desktop.url, desktop.key
        image.width, image.height = desktop.width, desktop.height
        image.mobile_url, image.mobile_path = (mobile.url, mobile.key) if mobile else (None, None)
        image.format, image.bytes = desktop.format, sum(v.bytes for v in variants)
        image.provider, image.model, image.placeholder = generated.provider, generated.model, self.placeholder
        image.attempts += attempts
        image.cost = (image.cost or 0.0) + (generated.cost or 0.0)
        db.session.commit()
        with self.lock:
            self.summary["completed"] += 1
            self.summary["cost"] = self.summary.get("cost", 0.0) + (generated.cost or 0.0)
        self.set_item(image.id, status="completed", phase="stored", progress=100, next_progress=100,
                      image_url=desktop.url, thumb_url=(mobile or desktop).url, placeholder=self.placeholder,
                      finished_at=time.time(), note=None)
        self.write_summary()
        event("image_generated", account=self.account_id, task=self.task_id, image=image.id,
              provider=generated.provider, attempts=attempts, ms=int(seconds * 1000), bytes=image.bytes)

    def fail_image(self, image_id: int, message: str, attempts: int, cost: float = 0.0,
                   only_if_held: bool = False) -> None:
        message = plain(message, 2000)  # stored, streamed and printed: no terminal escapes
        image = db.session.get(Image, image_id)
        held = image is not None and image.task_id == self.task_id
        if only_if_held and not held:
            return
        if held:
            image.status, image.error, image.task_id = "failed", message, None
            image.attempts += attempts
            image.cost = (image.cost or 0.0) + cost
            db.session.commit()
        with self.lock:
            self.summary["failed"] += 1
            self.summary["cost"] = self.summary.get("cost", 0.0) + cost
        self.set_item(image_id, status="failed", phase="failed", error=message, finished_at=time.time(), note=None)
        self.write_summary()
        event("image_failed", level=30, account=self.account_id, task=self.task_id, image=image_id,
              attempts=attempts, error=message)

    def release_image(self, image_id: int) -> None:
        """Cancelled before it started: back to pending, nothing was asked of the provider."""
        image = db.session.get(Image, image_id)
        if image is not None and image.task_id == self.task_id and image.status == "queued":
            image.status, image.task_id = "pending", None
            db.session.commit()
        self.set_item(image_id, status="cancelled", phase="cancelled", note="Cancelled before it started.")

    # ------------------------------------------------------------ progress plumbing

    def set_item(self, image_id: int, **fields: Any) -> None:
        """Change an image's progress; a change is published once (a write that changes nothing,
        such as ``note=None`` on an item without a note, sends no event)."""
        with self.lock:
            item = self.items[image_id]
            if "progress" in fields:  # a bar never moves backwards
                fields["progress"] = max(fields["progress"], item.get("progress") or 0)
            changed = {k: v for k, v in fields.items() if item.get(k) != v}
            if not changed:
                return
            if "phase" in changed:  # phase_at changes with the phase only
                changed["phase_at"] = time.time()
            item.update(changed)
            snapshot = dict(item)
        self.progress.write_image(self.task_id, snapshot)

    def write_summary(self) -> None:
        """Publish the summary if it changed since it was last published."""
        with self.lock:
            summary = dict(self.summary)
            if summary == self.published_summary:
                return
            self.published_summary = summary
        if self.progress.write_task(self.task_id, summary) is None:
            with self.lock:  # Redis was away: the next write sends it again (a restart lost the hash)
                if self.published_summary is summary:
                    self.published_summary = None
        self.save_job_meta(summary)

    def save_job_meta(self, summary: dict[str, Any]) -> None:
        job = get_current_job()
        if job is not None:
            job.meta["progress"] = {k: summary.get(k) for k in
                                    ("state", "total_images", "current_image", "completed", "failed")}
            job.meta["progress"]["content_title"] = inert(summary.get("content_title") or "", 120)  # see batches
            try:
                job.save_meta()
            except RedisError as exc:  # the dashboard's copy only: the database and stream go on
                current_app.logger.warning("job meta not saved task=%s: %s", self.task_id, exc)

    def task_cancelled(self) -> bool:
        return bool(db.session.scalar(db.select(GenerationTask.cancelled).filter_by(id=self.task_id)))

    def beat(self) -> None:
        """Heartbeat in the database (the truth the reconciler reads) and in Redis."""
        with self.app.app_context():
            while not self.stop_heartbeat.wait(HEARTBEAT_SECONDS):
                db.session.execute(db.update(GenerationTask).filter_by(id=self.task_id).values(heartbeat_at=utcnow()))
                db.session.commit()
                self.progress.heartbeat(self.task_id)
            db.session.remove()

    def finish(self, error: str | None) -> dict[str, Any]:
        task = db.session.get(GenerationTask, self.task_id)
        cancelled = task.cancelled or self.progress.cancel_requested(self.task_id)
        task.state = "FAILURE" if error else "SUCCESS"
        task.completed, task.failed = self.summary["completed"], self.summary["failed"]
        task.cost, task.error = self.summary.get("cost", 0.0), error
        task.cancelled, task.finished_at = cancelled, utcnow()
        db.session.commit()
        self.summary.update(state=task.state, error=error, cancelled=cancelled, finished_at=time.time())
        self.summary["outcome"] = outcome_of(self.summary)
        result = result_body(self.summary, list(self.items.values()))
        self.save_job_meta(dict(self.summary))  # the final ``task`` event is finish_task's, sent once
        self.progress.finish_task(self.task_id, self.summary, result)
        event("task_finished", account=self.account_id, task=self.task_id, state=task.state,
              outcome=self.summary["outcome"],
              completed=task.completed, failed=task.failed, cancelled=cancelled, cost=f"{task.cost:.4f}")
        return result
