"""The Images page at scale: server time, HTML size and SQL queries of ``GET /writer/images`` for
accounts with 1,000, 10,000 and 50,000 articles (6 images each: 1 featured + 5 in-article).

Starts a private Redis and a temporary SQLite database (or ``DATABASE_URL``), bulk-inserts the
rows (statuses mixed: generated with URLs, pending, failed), logs in through the real form
(``/login`` with its CSRF token) with the Flask test client, in process, and requests
``--requests`` times each (after 2 warm-ups): the first page, a title search, a status filter
and page 25. Time = the whole request through the test client (routing, auth, queries,
template rendering); queries = ``before_cursor_execute`` events on ``db.engine``.

Baseline, in the same run and database: an account with 10 articles (same shape). The
query count must be the same (constant, no N+1); the time ratio shows what the size costs.
Targets: <= 100 ms per page (median) at 50,000 articles, first-page HTML size independent of the
article count, constant query count.
Run: ``.venv/bin/python bench/images_page.py [--articles 1000,10000,50000] [--requests 20]``.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
from typing import Any

import harness
from flask.testing import FlaskClient
from harness import Stack, pct, table, verdict
from sqlalchemy import event, insert, select

from igny8.extensions import db
from igny8.models import Content, Image, utcnow

TOPICS = ("garden", "kitchen", "travel", "finance", "fitness", "coffee", "photography", "hiking", "baking", "cycling")
PAGES = {"first page": "/writer/images", "search": "/writer/images?q=garden",
         "status filter": "/writer/images?status=failed", "page 25": "/writer/images?page=25"}


def fill(account_id: int, articles: int, rng: random.Random) -> None:
    """``articles`` articles with 1 featured + 5 in-article images each, by bulk inserts."""
    now = utcnow()
    db.session.execute(insert(Content), [
        {"account_id": account_id, "title": f"The {TOPICS[n % len(TOPICS)]} guide, part {n}: what to know in 2026",
         "html": "<p>" + "Lorem ipsum dolor sit amet. " * 40 + "</p>", "status": "draft",
         "created_at": now, "updated_at": now} for n in range(articles)])
    ids = db.session.scalars(select(Content.id).filter_by(account_id=account_id).order_by(Content.id)).all()
    rows: list[dict[str, Any]] = []
    for content_id in ids:
        for position in range(6):
            status = rng.choices(("generated", "pending", "failed"), weights=(6, 3, 1))[0]
            url = f"/media/a{account_id}/2026/11/image-{content_id}-{position}.webp" if status == "generated" else None
            rows.append({"account_id": account_id, "content_id": content_id,
                         "type": "featured" if position == 0 else "in_article", "position": position,
                         "prompt": f"A detailed, photographic scene number {position} for article {content_id}",
                         "status": status, "image_url": url, "mobile_url": url and url.replace(".webp", "-m.webp"),
                         "error": "The provider refused the prompt." if status == "failed" else None,
                         "provider": "openai" if status == "generated" else None, "attempts": int(status != "pending"),
                         "cost": 0.042 if status == "generated" else 0.0, "placeholder": False,
                         "created_at": now, "updated_at": now})
    for start in range(0, len(rows), 2000):
        db.session.execute(insert(Image), rows[start:start + 2000])
    db.session.commit()


def login(client: FlaskClient, email: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    if match is None:
        raise RuntimeError("the login page has no csrf-token meta tag")
    answer = client.post("/login", data={"email": email, "password": harness.PASSWORD, "csrf_token": match[1]})
    if answer.status_code != 302:
        raise RuntimeError(f"login failed: {answer.status_code}")


def measure(stack: Stack, email: str, requests: int, queries: list[int]) -> dict[str, dict[str, Any]]:
    client = stack.app.test_client()
    login(client, email)
    out = {}
    for name, url in PAGES.items():
        times, counts, size = [], [], 0
        for n in range(requests + 2):
            queries[0] = 0
            started = time.perf_counter()
            answer = client.get(url)
            elapsed = time.perf_counter() - started
            if answer.status_code != 200:
                raise RuntimeError(f"{url} answered {answer.status_code}")
            if n >= 2:
                times.append(elapsed)
                counts.append(queries[0])
                size = len(answer.data)
        shown = len(re.findall(r'class="card article-row"', answer.get_data(as_text=True)))
        out[name] = {"median": statistics.median(times), "p95": pct(times, 95), "max": max(times),
                     "queries": max(counts), "varying": len(set(counts)) > 1, "kb": size / 1024, "shown": shown}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", default="1000,10000,50000",
                        help="comma-separated library sizes, one account each (default 1000,10000,50000)")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page (default 20)")
    args = parser.parse_args()
    levels = sorted(int(n) for n in args.articles.split(","))
    rng = random.Random(6)
    with Stack() as stack:
        small = stack.account("Small")
        accounts = {n: stack.account(f"Library {n}") for n in levels}
        with stack.app.app_context():
            started = time.perf_counter()
            fill(small["account_id"], 10, rng)
            for n, account in accounts.items():
                fill(account["account_id"], n, rng)
            total = sum(levels) + 10
            print(f"inserted {total} articles and {total * 6} images in {time.perf_counter() - started:.1f} s",
                  flush=True)
            queries = [0]

            def count(*_args: Any) -> None:
                queries[0] += 1

            event.listen(db.engine, "before_cursor_execute", count)
        base = measure(stack, small["email"], args.requests, queries)
        measured = {n: measure(stack, account["email"], args.requests, queries) for n, account in accounts.items()}
    rows = []
    for n, big in measured.items():
        for name in PAGES:
            b, s = big[name], base[name]
            empty = s["shown"] == 0
            rows.append([n, name, b["shown"], f"{b['median'] * 1000:.1f}", f"{b['p95'] * 1000:.1f}", b["queries"],
                         f"{b['kb']:.1f}", "-" if empty else f"{s['median'] * 1000:.1f}",
                         "-" if empty else f"{b['median'] / s['median']:.2f}x"])
    table(f"GET /writer/images by library size (6 images per article; median of {args.requests}), "
          "against a 10-article account in the same run",
          ["articles", "page", "shown", "ms", "p95 ms", "queries", "KB", "10-article ms", "ratio"], rows)
    top, first = measured[levels[-1]], measured[levels[0]]
    slowest = max(top.values(), key=lambda r: r["median"])
    counts = {r["queries"] for big in measured.values() for r in big.values()}
    counts |= {r["queries"] for r in base.values() if r["shown"]}
    varying = any(r["varying"] for big in (*measured.values(), base) for r in big.values())
    growth = top["first page"]["kb"] / first["first page"]["kb"]
    slower = top["first page"]["median"] / first["first page"]["median"]
    print(f"\nratio {levels[-1]} vs {levels[0]} articles: first page x{slower:.2f} in time, x{growth:.3f} in size\n")
    results = [
        verdict(f"<= 100 ms per page (median) at {levels[-1]} articles", slowest["median"] <= 0.100,
                f"slowest {slowest['median'] * 1000:.1f} ms"),
        verdict("first-page HTML size independent of the article count (within 2 %)", abs(growth - 1) <= 0.02,
                f"{first['first page']['kb']:.1f} KB at {levels[0]}, {top['first page']['kb']:.1f} KB at {levels[-1]}"),
        verdict("constant query count (every size, every page)", len(counts) == 1 and not varying,
                f"{sorted(counts)} queries"),
    ]
    return harness.exit_code(results)


if __name__ == "__main__":
    raise SystemExit(main())
