"""Pipeline overhead: what one worker spends per image besides the provider, split into our own
overhead (database, Redis progress, rate limit, prompt formatting) and image conversion.

Starts a private Redis and a temporary SQLite database (or ``DATABASE_URL``) and media folder.
The account uses the offline ``local`` provider with zero latency (it still renders and encodes
a placeholder: that is its "provider time").

1. In process: 10 articles x (1 featured + 4 in-article) = 50 images are queued with
   ``tasks.service.queue_task`` and the job body, ``tasks.runner.TaskRunner``, runs them in an app
   context. A subclass times every ``provider.generate`` and ``store_variants`` call, and a
   wrapper times ``variants.convert`` inside it. That batch stores each image before the next
   provider call, so overhead = wall time - provider - storage exactly; a second batch runs as
   the worker does (storing on a thread, overlapping the next call) for its wall time.
2. One real worker (``worker.py``): another 50 images, from the generate call to the task's
   SUCCESS in the database: the images/s a worker reaches (RQ's fork and imports included).
3. ``variants.convert`` of a 1024x1024 image to webp desktop + mobile (768 px), median of 10:
   the placeholder PNG, and a photo-like PNG (noise at several scales, to encode like a photo).

The baseline is the conversion itself: the work every image needs, whatever our code does.
The ratio overhead / (conversion + file writes) says how much our plumbing adds to it, and
"zero-overhead images/s" is what the same worker would reach with no overhead at all.
Targets: overhead <= 10 ms per image; conversion <= 150 ms.
Run: ``.venv/bin/python bench/pipeline_overhead.py [--images 50]``.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from typing import Any

import harness
from harness import Stack, table, verdict
from PIL import Image, ImageChops

from igny8.content.articles import create_article, validate_article
from igny8.extensions import db
from igny8.integrations.settings import save_image_generation
from igny8.media import variants
from igny8.media.stores import MediaStore
from igny8.models import GenerationTask
from igny8.models import Image as ImageRow
from igny8.providers.base import GeneratedImage, ImageRequest
from igny8.providers.local_provider import LocalProvider
from igny8.tasks.runner import TaskRunner, Tools
from igny8.tasks.service import queue_task


class TimedRunner(TaskRunner):
    """The job body, with the provider and storage steps timed. With ``overlap`` False, each image
    is stored before the next provider call (no storing thread), so that wall time - provider -
    storage is exactly our own overhead; with True, the job runs as the worker runs it."""

    provider_s: list[float]
    store_s: list[float]
    overlap = True

    def run_images(self, image_ids: list[int]) -> str | None:
        if self.overlap:
            return super().run_images(image_ids)
        tools = self.make_tools()  # self.storer stays None: run_image stores inline
        for image_id in image_ids:
            self.run_image(tools, image_id)
        return None

    def make_tools(self) -> Tools:
        tools = super().make_tools()
        provider = tools.provider
        original, self.provider_s = provider.generate, []

        def generate(request: Any, on_partial: Any = None) -> GeneratedImage:
            started = time.perf_counter()
            try:
                return original(request, on_partial)
            finally:
                self.provider_s.append(time.perf_counter() - started)

        provider.generate = generate  # type: ignore[method-assign]
        return tools

    def store_variants(self, store: MediaStore, image: ImageRow,
                       generated: GeneratedImage) -> list[variants.StoredVariant]:
        started = time.perf_counter()
        try:
            return super().store_variants(store, image, generated)
        finally:
            self.store_s.append(time.perf_counter() - started)


def timed(function: Callable[..., Any], log: list[float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            log.append(time.perf_counter() - started)

    return wrapper


def queue_images(stack: Stack, account_id: int, count: int, tag: str) -> str:
    """``count`` images in articles of 1 featured + 4 in-article, queued as one task."""
    with stack.app.app_context():
        ids: list[int] = []
        for n in range(-(-count // 5)):
            clean = validate_article({"title": f"{tag} article {n}: a walk through the autumn forest",
                                      "featured_prompt": f"A forest path in autumn light, {n}",
                                      "in_article_prompts": [f"Detail {p} of the forest, {n}" for p in range(1, 5)]})
            ids += [img.id for img in create_article(account_id, clean).images]
        db.session.commit()
        task = queue_task(account_id, {"ids": ids[:count]}).task
        return task.id


def in_process(stack: Stack, account_id: int, count: int, *, overlap: bool) -> dict[str, float]:
    task_id = queue_images(stack, account_id, count, "Overlapped" if overlap else "Serial")
    convert_s: list[float] = []
    original_convert = variants.convert
    variants.convert = timed(original_convert, convert_s)  # store_image looks it up at call time
    try:
        with stack.app.app_context():
            runner = TimedRunner(stack.app, task_id)
            runner.store_s, runner.overlap = [], overlap
            started = time.perf_counter()
            result = runner.run()
            wall = time.perf_counter() - started
    finally:
        variants.convert = original_convert
    if result.get("completed") != count:
        raise RuntimeError(f"the batch did not generate every image: {result}")
    provider, store, convert = sum(runner.provider_s), sum(runner.store_s), sum(convert_s)
    return {"wall": wall, "provider": provider / count, "convert": convert / count,
            "write": (store - convert) / count, "overhead": (wall - provider - store) / count}


def with_worker(stack: Stack, account_id: int, count: int) -> float:
    """Seconds from the generate call to SUCCESS with a real worker process."""
    stack.worker()
    started = time.perf_counter()
    task_id = queue_images(stack, account_id, count, "Worker")
    deadline = started + 120
    with stack.app.app_context():
        while time.perf_counter() < deadline:
            db.session.expire_all()
            task = db.session.get(GenerationTask, task_id)
            if task is not None and not task.running:
                if task.completed != count:
                    raise RuntimeError(f"worker batch ended {task.state} with {task.completed}/{count} images")
                return time.perf_counter() - started
            time.sleep(0.02)
    raise RuntimeError("the worker did not finish the batch in 120 s")


def photo_like(size: int = 1024) -> bytes:
    """A PNG with a photo's mix of smooth areas, texture and fine grain: it encodes to webp at
    the size and speed of a photo (~110 KB at 1024x1024, q82), unlike a flat placeholder."""
    def noise(scale: int, sigma: int) -> Image.Image:
        return Image.effect_noise((size // scale, size // scale), sigma).resize((size, size), Image.Resampling.BICUBIC)

    bands = [ImageChops.add(ImageChops.add(noise(64, 90), noise(8, 40), 2.0), noise(1, 4), 1.0, -64)
             for _ in range(3)]
    buffer = io.BytesIO()
    Image.merge("RGB", bands).save(buffer, format="PNG")
    return buffer.getvalue()


def conversion(samples: dict[str, bytes], repeat: int = 10) -> dict[str, tuple[float, int]]:
    """Median seconds and webp bytes (desktop + mobile) of ``variants.convert`` per sample."""
    out = {}
    for name, data in samples.items():
        times, size = [], 0
        for _ in range(repeat):
            started = time.perf_counter()
            encoded = variants.convert(data, "webp", desktop=True, mobile=True)
            times.append(time.perf_counter() - started)
            size = sum(len(v[1]) for v in encoded)
        out[name] = (statistics.median(times), size)
    return out


def placeholder_png() -> bytes:
    request = ImageRequest(prompt="A forest path in autumn light", negative_prompt="", width=1024, height=1024,
                           model="placeholder", output_format="png")
    return LocalProvider().generate(request).data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50, help="images per batch (default 50, at most 100)")
    args = parser.parse_args()
    with Stack() as stack:
        account = stack.account("Pipeline")
        with stack.app.app_context():
            save_image_generation(account["account_id"], {"provider": "local", "max_in_article_images": 4})
            db.session.commit()
        print(f"in-process batches of {args.images} images, serial then overlapped ...", flush=True)
        steps = in_process(stack, account["account_id"], args.images, overlap=False)
        overlapped = in_process(stack, account["account_id"], args.images, overlap=True)
        print(f"worker.py batch of {args.images} images ...", flush=True)
        worker_wall = with_worker(stack, account["account_id"], args.images)
        convert = conversion({"placeholder PNG 1024x1024": placeholder_png(), "photo-like PNG 1024x1024":
                              photo_like()})
    per_image = steps["wall"] / args.images
    floor = steps["provider"] + steps["convert"] + steps["write"]
    table(f"One batch of {args.images} images, local provider with zero latency (ms per image)",
          ["step", "ms/image", "share"],
          [[name, f"{steps[key] * 1000:.1f}", f"{steps[key] / per_image:.0%}"] for name, key in
           (("provider (placeholder render + encode)", "provider"), ("conversion (variants.convert)", "convert"),
            ("file writes (fsync, 2 variants)", "write"), ("our overhead (DB, Redis, prompt, limit)", "overhead"))]
          + [["total, each image stored before the next call", f"{per_image * 1000:.1f}", "100%"],
             ["total as the worker runs it (storing overlaps the next call)",
              f"{overlapped['wall'] / args.images * 1000:.1f}", f"{overlapped['wall'] / steps['wall']:.0%}"]])
    table("Throughput of one worker (images/s)", ["run", "images/s"],
          [["in-process TaskRunner, serial", f"{args.images / steps['wall']:.2f}"],
           ["in-process TaskRunner, storing overlapped", f"{args.images / overlapped['wall']:.2f}"],
           ["worker.py, generate call -> SUCCESS", f"{args.images / worker_wall:.2f}"],
           ["zero-overhead (provider + conversion + writes only)", f"{1 / floor:.2f}"]])
    table("variants.convert to webp desktop + mobile 768 px (median of 10)", ["input", "ms", "webp KB"],
          [[name, f"{t * 1000:.1f}", f"{size / 1024:.0f}"] for name, (t, size) in convert.items()])
    ratio = steps["overhead"] / (steps["convert"] + steps["write"])
    print(f"\nratio overhead / (conversion + writes): {ratio:.2f}; serially a worker reaches "
          f"{(args.images / steps['wall']) * floor:.0%} of its zero-overhead throughput, "
          f"{(args.images / overlapped['wall']) * floor:.0%} with storing overlapped\n")
    worst = max(t for t, _size in convert.values())
    results = [
        verdict("overhead <= 10 ms per image", steps["overhead"] <= 0.010, f"{steps['overhead'] * 1000:.1f} ms"),
        verdict("conversion <= 150 ms (photo-like 1024x1024)", worst <= 0.150, f"{worst * 1000:.0f} ms"),
    ]
    return harness.exit_code(results)


if __name__ == "__main__":
    raise SystemExit(main())
