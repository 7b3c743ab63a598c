"""Budget under a click storm: 50 simultaneous Generate clicks (each on its own one-image article)
against a monthly budget worth 3 images, sent to two web processes at once (gunicorn -k gevent,
one worker each, alternating), so the budget's lock is crossed by processes, not only threads.

Starts the ``harness.Stack`` (a private Redis, a temporary SQLite database or ``DATABASE_URL``)
and two web processes; no worker runs, so the accepted tasks stay queued (their reservations
held). Each round uses a fresh account: ``{"provider": "openai", "model": "gpt-image-2",
"quality": "medium", "partial_images": 0, "max_in_article_images": 0}`` (one featured image per
article, $0.063 by the price table) and ``monthly_budget`` = 3 x 0.063 + 0.01.

Figures: accepted (202) and refused (402) per round, the wall time of the 50 answers, the answer
latency p50/p99, and the dry-run latency (50 sequential ``dry_run`` requests).
Target: exactly 3 accepted and 47 refused in every round.
Run: ``.venv/bin/python bench/budget_clicks.py [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import harness
import requests
from harness import Stack, ms, pct, table, verdict

GENERATE = "/api/v1/writer/images/generate_images/"
CLICKS, FEATURED = 50, 0.063


def one_round(stack: Stack, webs: list[harness.Web], n: int) -> list[object]:
    who = stack.account(f"Budget {n}")
    settings = {"provider": "openai", "model": "gpt-image-2", "quality": "medium", "partial_images": 0,
                "max_in_article_images": 0, "monthly_budget": round(3 * FEATURED + 0.01, 4)}
    url = webs[0].url
    assert requests.put(f"{url}/api/v1/system/integrations/image_generation/", json=settings,
                        headers=who["headers"], timeout=30).status_code == 200
    ids = [requests.post(f"{url}/api/v1/writer/content/", json={"title": f"A{i}", "featured_prompt": "A fox"},
                         headers=who["headers"], timeout=30).json()["id"] for i in range(CLICKS)]

    def click(i: int) -> tuple[int, float]:
        started = time.perf_counter()
        answer = requests.post(webs[i % len(webs)].url + GENERATE, json={"content_id": ids[i]},
                               headers=who["headers"], timeout=60)
        return answer.status_code, time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CLICKS) as pool:
        answers = list(pool.map(click, range(CLICKS)))
    wall = time.perf_counter() - started
    dry = []
    for content_id in ids:
        t = time.perf_counter()
        requests.post(url + GENERATE, json={"content_id": content_id, "dry_run": True}, headers=who["headers"],
                      timeout=30)
        dry.append(time.perf_counter() - t)
    codes = [code for code, _ in answers]
    latencies = [seconds for _, seconds in answers]
    return [n, codes.count(202), codes.count(402), len(codes) - codes.count(202) - codes.count(402), ms(wall),
            ms(pct(latencies, 50)), ms(pct(latencies, 99)), ms(pct(dry, 50))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with Stack() as stack:
        webs = [stack.web(), stack.web()]
        rows = [one_round(stack, webs, n) for n in range(1, args.rounds + 1)]
    table("50 clicks against a budget worth 3 images, two web processes",
          ["round", "202", "402", "other", "wall (50 answers)", "answer p50", "answer p99", "dry run p50"], rows)
    met = all(row[1] == 3 and row[2] == CLICKS - 3 for row in rows)
    return harness.exit_code([verdict("exactly 3 accepted, 47 refused, every round", met,
                                      ", ".join(f"{row[1]}/{row[2]}" for row in rows))])


if __name__ == "__main__":
    sys.exit(main())
