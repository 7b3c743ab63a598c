"""Worker capacity: 50 accounts x 5 images submitted at once, provider latency 2 s, and how many
provider calls one worker machine keeps in flight — per worker layout, with their memory.

Starts a private Redis, a temporary SQLite database (or ``DATABASE_URL``) and the fake OpenAI
server of ``tests/support/provider_servers.py`` answering after 2 s (wrapped here to count the
requests in flight at once). 50 accounts each have an OpenAI key saved and the default settings
(one image at a time per batch: ``concurrency`` 1; the default per-account limit of
``ratelimit.DEFAULT_LIMITS``), with ``max_in_article_images`` 4 and ``partial_images`` 0 (so a
call is one plain 2 s request). Each scenario queues one 5-image batch per account as the API
does (``tasks.service.queue_task``), all at once, and waits until the 50 tasks have ended.

Layouts, each measured in the same run:
- **baseline** (today's setup): 8 ``worker.py`` processes (docs/production.md: 4 per core);
- **50 plain processes**: 50 ``worker.py`` processes (RQ's own answer: one process per batch);
- **forked pool**: one ``worker.py`` with ``WORKER_PROCESSES=50`` (igny8/ops/forks.py: the
  loops forked after the app is loaded, sharing its pages copy-on-write).
- **rq worker-pool**: ``rq worker-pool -n 50`` with a worker class whose module loads the app
  (``harness/rq_pool_app.py``; RQ forks its workers from the process that imported it).
RQ 3.0 has no worker class that runs several jobs in threads of one process.

Figures: wall time from the first submit to the last task's ``finished_at`` against the floor
the limits allow (5 sequential calls x 2 s = 10 s), peak provider calls in flight, the workers'
memory at its peak — RSS summed over every worker process and work-horse (psutil), and PSS (the
shared pages divided among their sharers: what the processes really cost) — and that memory per
in-flight image; plus the time the workers took to start. Targets: >= 50 calls in flight on this
machine; wall <= 1.5x the floor. Run: ``.venv/bin/python bench/capacity.py [--accounts 50]``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import harness
import psutil
from harness import Child, Stack, table, verdict

from igny8.content.articles import create_article, validate_article
from igny8.extensions import db
from igny8.integrations.settings import save_credentials, save_image_generation
from igny8.models import GenerationTask, Image, utcnow
from igny8.tasks.service import queue_task
from tests.support.provider_servers import FakeOpenAI

LATENCY = 2.0
IMAGES = 5
FLOOR = IMAGES * LATENCY  # one image at a time per batch (the default), every batch at once
CORES = psutil.cpu_count() or 1


class CountingOpenAI(FakeOpenAI):
    """The fake OpenAI server, counting the requests it is answering at the same time."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = threading.Lock()
        self.active = self.peak = 0

    def handle_post(self, handler: Any, body: Any) -> None:
        with self.gate:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            super().handle_post(handler, body)
        finally:
            with self.gate:
                self.active -= 1


class MemorySampler(threading.Thread):
    """Every 0.5 s: RSS (and every 2 s PSS) summed over the worker processes and their descendants."""

    def __init__(self, roots: list[int]) -> None:
        super().__init__(daemon=True)
        self.roots, self.stop_event = roots, threading.Event()
        self.peak_rss = self.peak_pss = 0
        self.peak_processes = 0

    def processes(self) -> list[psutil.Process]:
        found = []
        for pid in self.roots:
            try:
                root = psutil.Process(pid)
                found += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        return found

    def cpu_seconds(self) -> float:
        """CPU used so far by the live worker processes and every descendant they reaped."""
        total = 0.0
        for proc in self.processes():
            try:
                times = proc.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            except psutil.Error:
                continue
        return total

    def run(self) -> None:
        tick = 0
        while not self.stop_event.wait(0.5):
            procs = self.processes()
            rss = pss = 0
            for proc in procs:
                try:
                    if tick % 4 == 0:
                        info = proc.memory_full_info()
                        rss, pss = rss + info.rss, pss + info.pss
                    else:
                        rss += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_processes = max(self.peak_processes, len(procs))
            if tick % 4 == 0:
                self.peak_pss = max(self.peak_pss, pss)
            tick += 1


def setup_accounts(stack: Stack, count: int) -> list[int]:
    ids = []
    for n in range(count):
        account = stack.account(f"capacity-{n}")
        with stack.app.app_context():
            save_credentials(account["account_id"], "openai", {"api_key": "sk-bench-0123456789abcdef"})
            save_image_generation(account["account_id"], {"provider": "openai", "max_in_article_images": 4,
                                                          "partial_images": 0})
            db.session.commit()
        ids.append(account["account_id"])
    return ids


def new_articles(stack: Stack, accounts: list[int], label: str) -> list[tuple[int, int]]:
    with stack.app.app_context():
        pairs = []
        for account_id in accounts:
            clean = validate_article({"title": f"{label} {account_id}", "featured_prompt": "A lighthouse at dawn",
                                      "in_article_prompts": [f"The lighthouse, detail {p}" for p in range(1, 5)]})
            pairs.append((account_id, create_article(account_id, clean).id))
        db.session.commit()
        return pairs


def start_workers(stack: Stack, count: int, processes: int, fake: CountingOpenAI,
                  rq_pool: bool = False) -> tuple[list[Child], float]:
    started = time.perf_counter()
    env = stack.env(OPENAI_BASE_URL=fake.base_url, WORKER_PROCESSES=str(processes),
                    PYTHONPATH=str(Path(__file__).resolve().parent))
    children = []
    for n in range(count):
        log_path = stack.tmp / f"capacity-worker-{processes}-{n}{'-rq' if rq_pool else ''}.log"
        command = [sys.executable, "worker.py"]
        if rq_pool:  # RQ's own supervisor, forking RQ workers of a class that loads the app at import
            command = [str(Path(sys.executable).parent / "rq"), "worker-pool", "images", "webhooks", "maintenance",
                       "-n", str(processes), "-w", "harness.rq_pool_app.AppWorker", "-u", stack.redis_server.url]
        children.append(Child("worker", command, env, log_path))
    stack.children += children
    for child in children:
        if not rq_pool:
            child.wait_for(lambda c=child: b"worker_start" in c.log_path.read_bytes(), "worker_start", timeout=300)
    registered = 0
    deadline = time.monotonic() + 300
    while registered < count * processes and time.monotonic() < deadline:  # every RQ loop is listening
        registered = len(stack.redis.smembers("rq:workers"))
        time.sleep(0.2)
    return children, time.perf_counter() - started


def run_scenario(stack: Stack, fake: CountingOpenAI, accounts: list[int], label: str, workers: int,
                 processes: int, rq_pool: bool = False) -> dict[str, Any]:
    print(f"{label}: starting {workers} x {processes} RQ worker loop(s) ...", flush=True)
    children, startup = start_workers(stack, workers, processes, fake, rq_pool)
    pairs = new_articles(stack, accounts, label)
    sampler = MemorySampler([c.proc.pid for c in children])
    sampler.start()
    time.sleep(1.2)
    idle_rss = sampler.peak_rss
    cpu_before = sampler.cpu_seconds()
    fake.peak = 0
    with stack.app.app_context():
        begun = utcnow()
        task_ids = [queue_task(account_id, {"content_id": content_id}).task.id for account_id, content_id in pairs]
        submitted = (utcnow() - begun).total_seconds()
        deadline = time.monotonic() + 600
        while True:
            db.session.remove()
            tasks = db.session.scalars(db.select(GenerationTask).where(GenerationTask.id.in_(task_ids))).all()
            if all(not t.running for t in tasks) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        wall = (max(t.finished_at or utcnow() for t in tasks) - begun) / timedelta(seconds=1)
        completed = sum(t.completed for t in tasks)
        errors = db.session.scalars(db.select(Image.error).where(Image.task_id.is_(None), Image.status == "failed",
                                                                 Image.content_id.in_([c for _a, c in pairs]))).all()
        for error in sorted(set(errors)):
            print(f"  failed image ({errors.count(error)}x): {error}", flush=True)
        db.session.remove()
    cpu = sampler.cpu_seconds() - cpu_before
    sampler.stop_event.set()
    sampler.join(5)
    for child in children:
        child.stop()
        stack.children.remove(child)
    return {"label": label, "workers": workers, "processes": processes, "startup": startup, "wall": wall,
            "submit": submitted, "peak": fake.peak, "rss": sampler.peak_rss, "pss": sampler.peak_pss,
            "idle_rss": idle_rss, "cpu": cpu, "procs": sampler.peak_processes, "completed": completed,
            "images": len(pairs) * IMAGES}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=50, help="accounts, one 5-image batch each (default 50)")
    parser.add_argument("--only", choices=("baseline", "plain", "rq-pool", "forked"), action="append",
                        help="run only these layouts (default: all three)")
    args = parser.parse_args()
    n = args.accounts
    layouts = [("baseline: 8 worker.py", "baseline", 8, 1), (f"{n} plain worker.py", "plain", n, 1),
               (f"rq worker-pool -n {n}", "rq-pool", 1, n), (f"1 worker.py, WORKER_PROCESSES={n}", "forked", 1, n)]
    fake = CountingOpenAI(latency=LATENCY).start()
    rows = []
    try:
        with Stack() as stack:
            accounts = setup_accounts(stack, n)
            for label, key, workers, processes in layouts:
                if not args.only or key in args.only:
                    rows.append(run_scenario(stack, fake, accounts, label, workers, processes, key == "rq-pool"))
    finally:
        fake.stop()
    mb = 1024 * 1024
    table(f"{n} accounts x {IMAGES} images at once, provider latency {LATENCY:.0f} s, floor {FLOOR:.0f} s",
          ["layout", "start s", "wall s", "vs floor", "worker CPU s", "CPU floor s", "peak in flight", "processes",
           "RSS sum MB", "PSS sum MB",
           "RSS MB / in-flight", "PSS MB / in-flight", "images made"],
          [[r["label"], f"{r['startup']:.1f}", f"{r['wall']:.1f}", f"{r['wall'] / FLOOR:.2f}x", f"{r['cpu']:.1f}",
            f"{r['cpu'] / CORES:.1f}", r["peak"], r["procs"],
            f"{r['rss'] / mb:.0f}", f"{r['pss'] / mb:.0f}", f"{r['rss'] / mb / max(r['peak'], 1):.1f}",
            f"{r['pss'] / mb / max(r['peak'], 1):.1f}", f"{r['completed']}/{r['images']}"] for r in rows])
    base = next((r for r in rows if r["label"].startswith("baseline")), None)
    if base:
        for r in rows[1:]:
            print(f"{r['label']}: wall {base['wall'] / r['wall']:.1f}x faster than the baseline, "
                  f"{r['peak'] / max(base['peak'], 1):.1f}x the calls in flight, "
                  f"PSS {r['pss'] / max(base['pss'], 1):.1f}x, RSS {r['rss'] / max(base['rss'], 1):.1f}x")
    print(f"CPU floor = the workers' CPU seconds / {CORES} cores: the wall time this machine needs for that work "
          "even with the provider answering at once.")
    best = rows[-1]
    results = [
        verdict(f">= {n} provider calls in flight on this machine ({best['label']})", best["peak"] >= n,
                f"peak {best['peak']}"),
        verdict(f"wall <= 1.5x the floor ({best['label']})", best["wall"] <= 1.5 * FLOOR,
                f"{best['wall']:.1f} s = {best['wall'] / FLOOR:.2f}x {FLOOR:.0f} s"),
        verdict("every image made", all(r["completed"] == r["images"] for r in rows),
                ", ".join(f"{r['completed']}/{r['images']}" for r in rows)),
    ]
    return harness.exit_code(results)


if __name__ == "__main__":
    raise SystemExit(main())
