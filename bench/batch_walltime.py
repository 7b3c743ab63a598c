"""Batch wall time: one article (1 featured + 4 in-article images) against a provider that takes
1 s per image, sequential versus 3 at a time, and proof that the shared rate limit holds.

Starts a private Redis, a temporary SQLite database (or ``DATABASE_URL``), the fake OpenAI
server of ``tests/support/provider_servers.py`` with a 1 s latency (wrapped here to count the requests
in flight at once), the app under ``gunicorn -k gevent -w 1`` and ``worker.py`` processes with
``OPENAI_BASE_URL`` pointing at the fake server. Each account has an OpenAI key saved and
``{"provider": "openai", "max_in_article_images": 4, "concurrency": 1 | 3}``.

Wall time = from sending ``POST /api/v1/writer/images/generate_images/`` (Bearer, ``content_id``)
to receiving the ``done`` event of ``GET /api/v1/tasks/<id>/events``, each scenario ``--repeat``
times on fresh articles (one account per scenario, so no scenario eats another's per-minute
budget). "First call" is the time from the request to the provider's first request: the fixed
cost of a batch (queue, fork, imports, settings); "gap" the median time from a provider answer
to the next request (sequential); "tail" from the last provider answer to the ``done`` event
(decoding, conversion, storing and finishing the task).

Scenarios: 1 worker sequential; 1 worker concurrency 3; 2 workers, two articles at once with
concurrency 3 each (6 requests wanted) against the default OpenAI limit of 4 in flight
(``ratelimit.DEFAULT_LIMITS``; the app has no environment setting for a lower one yet).
The baseline is the provider's floor: 5 x 1 s sequential, ceil(5 / 3) x 1 s with concurrency 3.
Targets: concurrency 3 <= 2.3 s; sequential <= 5.3 s; in flight never above the limit.
Run: ``.venv/bin/python bench/batch_walltime.py [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from typing import Any

import harness
import requests
from harness import Stack, table, verdict

from igny8.content.articles import create_article, validate_article
from igny8.extensions import db
from igny8.integrations.settings import save_credentials, save_image_generation
from igny8.providers.ratelimit import DEFAULT_LIMITS
from tests.support.provider_servers import FakeOpenAI

LATENCY = 1.0
IMAGES = 5
LIMIT = DEFAULT_LIMITS["openai"].concurrent


class CountingOpenAI(FakeOpenAI):
    """The fake OpenAI server, counting the requests it is answering at the same time."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = threading.Lock()
        self.active, self.peak, self.starts, self.ends = 0, 0, [], []  # type: ignore[var-annotated]

    def handle_post(self, handler: Any, body: Any) -> None:
        with self.gate:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.starts.append(time.perf_counter())
        try:
            super().handle_post(handler, body)
        finally:
            with self.gate:
                self.active -= 1
                self.ends.append(time.perf_counter())

    def reset(self) -> None:
        with self.gate:
            self.peak, self.starts, self.ends = self.active, [], []


def setup_account(stack: Stack, name: str, concurrency: int) -> dict[str, Any]:
    account = stack.account(name)
    with stack.app.app_context():
        save_credentials(account["account_id"], "openai", {"api_key": "sk-bench-0123456789abcdef"})
        save_image_generation(account["account_id"], {"provider": "openai", "concurrency": concurrency,
                                                      "max_in_article_images": 4})
        db.session.commit()
    return account


def new_article(stack: Stack, account_id: int, n: int) -> int:
    with stack.app.app_context():
        clean = validate_article({"title": f"Benchmark article {n}", "featured_prompt": "A lighthouse at dawn",
                                  "in_article_prompts": [f"The lighthouse, detail {p}" for p in range(1, 5)]})
        content = create_article(account_id, clean)
        db.session.commit()
        return content.id


def generate_and_wait(url: str, headers: dict[str, str], content_id: int) -> float:
    """perf_counter() when the task's ``done`` event arrived; raises unless all 5 images were made."""
    answer = requests.post(f"{url}/api/v1/writer/images/generate_images/", json={"content_id": content_id},
                           headers=headers, timeout=30)
    answer.raise_for_status()
    task_id = answer.json()["task_id"]
    with requests.get(f"{url}/api/v1/tasks/{task_id}/events", headers=headers, stream=True, timeout=60) as stream:
        done = False
        for raw in stream.iter_lines():
            line = raw.decode()
            if line == "event: done":
                done, arrived = True, time.perf_counter()
            elif done and line.startswith("data: "):
                if json.loads(line[6:]).get("completed") != IMAGES:
                    raise RuntimeError(f"the batch did not make {IMAGES} images: {line[:300]}")
                return arrived
    raise RuntimeError(f"the stream of task {task_id} ended without done")


def scenario(stack: Stack, web: harness.Web, fake: CountingOpenAI, account: dict[str, Any], articles: int,
             repeat: int) -> dict[str, Any]:
    walls, firsts, peaks, gaps, tails = [], [], [], [], []
    for run in range(repeat):
        contents = [new_article(stack, account["account_id"], run * 10 + a) for a in range(articles)]
        fake.reset()
        started = time.perf_counter()
        finished: list[float] = []

        def one(content_id: int, finished: list[float] = finished) -> None:
            finished.append(generate_and_wait(web.url, account["headers"], content_id))

        threads = [threading.Thread(target=one, args=(c,)) for c in contents]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        if len(finished) != articles:
            raise RuntimeError("a batch did not finish (see the errors above)")
        walls.append(max(finished) - started)
        firsts.append(min(fake.starts) - started)
        peaks.append(fake.peak)
        tails.append(max(finished) - max(fake.ends))
        if articles == 1:  # a provider answer to the next request (shown for concurrency 1 only)
            starts, ends = sorted(fake.starts), sorted(fake.ends)
            gaps += [start - end for start, end in zip(starts[1:], ends[:-1], strict=True) if start > end]
        time.sleep(0.5)
    return {"wall": statistics.median(walls), "min": min(walls), "max": max(walls),
            "first": statistics.median(firsts), "peak": max(peaks), "tail": statistics.median(tails),
            "gap": statistics.median(gaps) if gaps else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (default 3)")
    args = parser.parse_args()
    fake = CountingOpenAI(latency=LATENCY).start()
    try:
        with Stack() as stack:
            web = stack.web()
            stack.worker(OPENAI_BASE_URL=fake.base_url)
            rows = []
            for label, concurrency, articles, workers in (("sequential", 1, 1, 1), ("concurrency 3", 3, 1, 1),
                                                          ("2 workers, 2 articles", 3, 2, 2)):
                if workers == 2:
                    stack.worker(OPENAI_BASE_URL=fake.base_url)
                print(f"{label} x{args.repeat} ...", flush=True)
                account = setup_account(stack, label.split(",")[0].replace(" ", "-"), concurrency)
                result = scenario(stack, web, fake, account, articles, args.repeat)
                floor = -(-IMAGES * articles // min(concurrency * workers, LIMIT)) * LATENCY
                rows.append({"label": label, "workers": workers, "concurrency": concurrency,
                             "images": IMAGES * articles, "floor": floor, **result})
    finally:
        fake.stop()
    table(f"Generate request -> done event, provider latency {LATENCY:.0f} s (median of {args.repeat})",
          ["scenario", "workers", "concurrency", "images", "wall s", "min-max s", "floor s", "vs floor",
           "first call ms", "gap ms", "tail ms", f"peak in flight (limit {LIMIT})"],
          [[r["label"], r["workers"], r["concurrency"], r["images"], f"{r['wall']:.2f}",
            f"{r['min']:.2f}-{r['max']:.2f}", f"{r['floor']:.0f}", f"+{r['wall'] - r['floor']:.2f} s",
            f"{r['first'] * 1000:.0f}",
            f"{r['gap'] * 1000:.0f}" if r["gap"] is not None and r["concurrency"] == 1 else "-",
            f"{r['tail'] * 1000:.0f}", r["peak"]] for r in rows])
    sequential, parallel, two = rows
    print(f"\nratio sequential / concurrency 3: {sequential['wall'] / parallel['wall']:.2f}x faster "
          f"(the floor allows {sequential['floor'] / parallel['floor']:.1f}x)\n")
    results = [
        verdict("concurrency 3 <= 2.3 s", parallel["wall"] <= 2.3, f"{parallel['wall']:.2f} s (median)"),
        verdict("sequential <= 5.3 s", sequential["wall"] <= 5.3, f"{sequential['wall']:.2f} s (median)"),
        verdict(f"in flight never above the limit ({LIMIT}), also across 2 workers",
                all(r["peak"] <= LIMIT for r in rows) and two["peak"] > parallel["concurrency"],
                f"peaks {', '.join(str(r['peak']) for r in rows)}; 2 workers wanted 6 at once"),
    ]
    return harness.exit_code(results)


if __name__ == "__main__":
    raise SystemExit(main())
