"""Fair scheduling: a click while another account's 5,000-image bulk run is queued.

Starts a private Redis, a temporary SQLite database (or ``DATABASE_URL``), the app under
``gunicorn -k gevent -w 1`` and two ``worker.py`` processes with the ``local`` provider at
``--latency`` s (default 0.2) per image. Account A has 1,667 articles of 3 images (featured + 2
in-article: 5,001 images); account B has articles of one image; account C has 5,000 articles of
one image (only to time the creation of a 5,000-article run, which is then cancelled).

1. Run creation: ``POST /api/v1/writer/images/generate_bulk/ {"all_missing": true}`` for C's 5,000
   articles, timed at the client (no worker running yet), then its cancel.
2. Fair (this code): A's bulk run is created the same way (tasks wait in Redis; the RQ queue
   ``bulk`` holds about one job per worker), the workers start, and once A's run is going B clicks
   Generate ``--clicks`` times (default 20), one after another, each waiting for its batch to end.
   B's wait = its task's ``started_at`` (the runner starts the first image) minus the click.
3. Baseline (one FIFO queue): A's remaining articles are queued as clicks (``queue_task``: one RQ job
   each, all on the ``images`` queue, as before bulk runs existed) and B clicks once. B's task then
   waits behind every job queued before it: the bench waits ``--fifo-cap`` s (default 30) and
   reports the wait measured if it started, else the lower bound and the estimate from the jobs
   ahead and the workers' throughput measured in step 2.

Targets: B's p95 <= 1 s; the 5,000-article run created in <= 5 s.
Run: ``.venv/bin/python bench/fairness.py [--clicks 20] [--latency 0.2]``.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime

import harness
import requests
from harness import Stack, table, verdict

from igny8.content.articles import create_article, validate_article
from igny8.extensions import db
from igny8.integrations.settings import save_image_generation
from igny8.models import GenerationTask, Image
from igny8.tasks.service import queue_task

BULK = "/api/v1/writer/images/generate_bulk/"
GENERATE = "/api/v1/writer/images/generate_images/"


def articles(stack: Stack, account_id: int, count: int, in_article: int, prefix: str) -> list[int]:
    ids = []
    with stack.app.app_context():
        save_image_generation(account_id, {"provider": "local", "model": "placeholder",
                                           "max_in_article_images": in_article})
        for start in range(0, count, 500):
            batch = []
            for n in range(start, min(count, start + 500)):
                clean = validate_article({"title": f"{prefix} {n}", "featured_prompt": "A red fox in the snow",
                                          "in_article_prompts": [f"Detail {p}" for p in range(1, in_article + 1)]})
                batch.append(create_article(account_id, clean))
            db.session.commit()
            ids += [content.id for content in batch]
    return ids


def post(url: str, headers: dict[str, str], body: dict | None = None, timeout: float = 120) -> tuple[dict, float]:
    started = time.perf_counter()
    answer = requests.post(url, json=body, headers=headers, timeout=timeout)
    took = time.perf_counter() - started
    if answer.status_code >= 400:
        raise RuntimeError(f"{url} answered {answer.status_code}: {answer.text[:300]}")
    return answer.json(), took


def task_row(stack: Stack, task_id: str) -> GenerationTask:
    with stack.app.app_context():
        task = db.session.get(GenerationTask, task_id)
        db.session.expunge(task)
        return task


def click_wait(stack: Stack, web: harness.Web, who: dict, content_id: int, cap: float) -> float | None:
    """Seconds from the click to the task's start (None past ``cap``); waits for the batch to end."""
    clicked = datetime.utcnow()  # noqa: DTZ003 - the rows hold naive UTC (models.base.utcnow)
    body, _ = post(f"{web.url}{GENERATE}", who["headers"], {"content_id": content_id})
    deadline = time.monotonic() + cap
    while time.monotonic() < deadline:
        task = task_row(stack, body["task_id"])
        if task.started_at is not None:
            while task_row(stack, body["task_id"]).state not in ("SUCCESS", "FAILURE"):
                time.sleep(0.02)
            return (task.started_at - clicked).total_seconds()
        time.sleep(0.02)
    return None


def images_done(stack: Stack, account_id: int, status: str = "generated") -> int:
    with stack.app.app_context():
        return db.session.scalar(db.select(db.func.count()).where(Image.account_id == account_id,
                                                                  Image.status == status)) or 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--fifo-cap", type=float, default=30.0)
    args = parser.parse_args()
    with Stack() as stack:
        web = stack.web()
        a, b, c = stack.account("Bulk A"), stack.account("Clicker B"), stack.account("Creator C")
        print("writing articles ...", flush=True)
        articles(stack, a["account_id"], 1667, 2, "A")
        b_articles = articles(stack, b["account_id"], args.clicks + 1, 0, "B")
        articles(stack, c["account_id"], 5000, 0, "C")
        created, create_s = post(f"{web.url}{BULK}", c["headers"], {"all_missing": True})
        _, cancel_s = post(f"{web.url}/api/v1/runs/{created['run_id']}/cancel", c["headers"])
        print(f"C: run of {len(created['tasks'])} articles / {created['total_images']} images created in "
              f"{create_s:.2f} s, cancelled in {cancel_s:.2f} s", flush=True)
        run, a_create_s = post(f"{web.url}{BULK}", a["headers"], {"all_missing": True})
        print(f"A: run of {len(run['tasks'])} articles / {run['total_images']} images created in {a_create_s:.2f} s",
              flush=True)
        for _ in range(2):
            stack.worker(LOCAL_PROVIDER_LATENCY=str(args.latency))
        started, done_before = time.monotonic(), images_done(stack, a["account_id"])
        time.sleep(2.0)  # A's run is going on both workers
        fair = []
        for n in range(args.clicks):
            wait = click_wait(stack, web, b, b_articles[n], 30.0)
            if wait is None:
                raise RuntimeError("a click did not start within 30 s")
            fair.append(wait)
        elapsed, made = time.monotonic() - started, images_done(stack, a["account_id"]) - done_before
        throughput = made / elapsed  # A's images per second on the two workers, clicks and all
        summary = requests.get(f"{web.url}/api/v1/runs/{run['run_id']}/", headers=a["headers"], timeout=30).json()
        print(f"A's run during the clicks: {made} images in {elapsed:.1f} s ({throughput:.1f}/s), "
              f"{images_done(stack, a['account_id'], 'failed')} failed, {summary['remaining']} remaining", flush=True)
        post(f"{web.url}/api/v1/runs/{run['run_id']}/cancel", a["headers"])
        time.sleep(1.5)
        with stack.app.app_context():  # the baseline: everything on one FIFO queue, as clicks
            pending = list(db.session.scalars(db.select(Image.content_id).where(
                Image.account_id == a["account_id"], Image.status == "pending").distinct()))
            for content_id in pending:
                queue_task(a["account_id"], {"content_id": content_id})
            ahead = db.session.scalar(db.select(db.func.sum(GenerationTask.total)).where(
                GenerationTask.account_id == a["account_id"], GenerationTask.state == "PENDING")) or 0
        fifo = click_wait(stack, web, b, b_articles[args.clicks], args.fifo_cap)
        estimate = ahead / throughput if throughput else float("inf")
    p50, p95 = harness.pct(fair, 50), harness.pct(fair, 95)
    fifo_text = f"{fifo:.2f}" if fifo is not None else f"> {args.fifo_cap:.0f} (est. {estimate:.0f})"
    table(f"B's wait from click to its first image starting, {len(fair)} clicks, A's 5,001-image run queued, "
          f"2 workers, local provider {args.latency} s",
          ["scheduling", "p50 s", "p95 s", "max s"],
          [["fair (images before bulk, fed round-robin)", f"{p50:.3f}", f"{p95:.3f}", f"{max(fair):.3f}"],
           ["baseline: one FIFO queue (1 click)", fifo_text, fifo_text, fifo_text]])
    baseline = fifo if fifo is not None else estimate
    print(f"\nratio FIFO / fair p95: {baseline / p95:.0f}x ({ahead} images ahead of the click in the FIFO queue)")
    print(f"run creation: {len(created['tasks'])} articles in {create_s:.2f} s; "
          f"{len(run['tasks'])} in {a_create_s:.2f} s\n")
    results = [verdict("B's p95 <= 1 s", p95 <= 1.0, f"{p95:.3f} s"),
               verdict("a 5,000-article run created in <= 5 s", create_s <= 5.0, f"{create_s:.2f} s")]
    return harness.exit_code(results)


if __name__ == "__main__":
    raise SystemExit(main())
