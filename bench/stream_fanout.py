"""Stream fan-out: how many event streams one gunicorn gevent web process holds, and at what cost.

Starts a private Redis, a temporary SQLite database (or ``DATABASE_URL``) and ONE web process
(``gunicorn -k gevent -w 1 --worker-connections 4000``, fd limit raised), and queues one-image
tasks the way the API does (``tasks.service.queue_task``; they stay PENDING: no worker runs).
For each level N (default 100, 1000, 2000; ``--clients 100,500`` overrides):

- a client process (``harness/sse_client.py``: one asyncio loop, raw sockets, no extra
  dependency) opens N streams ``GET /api/v1/tasks/<id>/events`` with a Bearer token, at most
  100 being opened at once, each on its OWN task (N tasks, as real writers each watch their own
  task; ``--per-task K`` puts K streams on each of N/K tasks instead, the many-watchers case).
  "open s" = from its first connection until every stream has received its ``snapshot``;
- this process then writes progress updates, one per task per second, the writes spread evenly
  over each second (``ProgressStore.write_image`` with ``phase_at`` = time.time() just before
  the write, as the worker writes; two writer threads), so N/K writes a second each reach K
  streams; latency = arrival of the event's bytes at the client - ``phase_at``. First one
  round (every task once) until every stream has received an update: its latency is reported
  apart ("1st p99": right after a mass open the server is still finishing subscriptions); then
  the measured window of ``--seconds`` seconds (p50/p99/max, "upd/s" = the rate the writer
  achieved, 1 per task per second when it kept up);
- meanwhile it samples every second the resident memory of the gunicorn *worker* (not the
  master) and the Redis connections: ``CLIENT LIST`` on the bench Redis (every client, ours
  included) and, every 3 s, the web worker's own TCP connections to Redis (psutil).

After each level the client disconnects; the runner goes on writing one update per task a
second (a stream notices that its client left only when it next writes) until the web worker
holds no stream ("freed s", up to 40 s).

Baseline for the ratios: the same measures at the smallest level (100). Targets: 2,000 streams
open, every update delivered, no stream error; 1,000 streams p50 <= 5 ms and p99 <= 50 ms;
2,000 streams p99 <= 100 ms; all 2,000 streams open within 3 s; constant Redis connections
(bounded by the pools, not one per stream: fewer than 1 more per 100 more streams); RSS < 300 MB.
Run: ``.venv/bin/python bench/stream_fanout.py [--clients 100,1000,2000] [--per-task 1] [--seconds 15]``.
"""

from __future__ import annotations

import argparse
import time

import harness
import psutil
from harness import Stack, fanout, ms, table, verdict
from harness.fanout import Level


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="100,1000,2000", help="comma-separated stream counts")
    parser.add_argument("--per-task", type=int, default=1, metavar="K",
                        help="streams on each task (1: every stream watches its own task)")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds of updates per level")
    args = parser.parse_args()
    levels = sorted(int(n) for n in args.clients.split(","))
    rows: list[Level] = []
    started = time.monotonic()
    with Stack() as stack:
        web = stack.web(nofile=2 * max(levels) + 1024)
        account = stack.account("Fanout")
        queued = time.monotonic()
        tasks = harness.queue_tasks(stack, account["account_id"], max(1, -(-max(levels) // args.per_task)))
        print(f"{len(tasks)} tasks queued in {time.monotonic() - queued:.1f} s", flush=True)
        idle_rss = psutil.Process(web.worker_pid()).memory_info().rss / 2**20
        for count in levels:
            print(f"{count} streams ...", flush=True)
            rows.append(fanout.run_igny8_level(stack, web, account["token"], tasks, count, args.per_task,
                                               args.seconds))
            if not rows[-1].complete:
                print(f"only {rows[-1].ready} of {count} streams got their snapshot; stopping here. "
                      f"Last error in the web log: {fanout.last_error(web)}")
                break
    code = report(rows, idle_rss, args.per_task)
    print(f"\n(run took {time.monotonic() - started:.0f} s)")
    return code


def at(rows: list[Level], n: int) -> Level | None:
    return next((r for r in rows if r.streams == n and r.complete), None)


def report(rows: list[Level], idle_rss: float, per_task: int) -> int:
    measured = [r for r in rows if r.complete]
    watchers = "one task per stream" if per_task == 1 else f"{per_task} streams per task"
    table(f"Event streams on one gevent web process, {watchers} (idle worker RSS {idle_rss:.0f} MB)",
          fanout.ROW_HEADERS, [r.row() for r in rows])
    print(fanout.ROW_NOTES)
    not_run = "not measured (level not run or not every stream opened)"
    if measured:
        base, top = measured[0], measured[-1]
        print(f"\nratio {top.streams} vs {base.streams} streams: p50 x{top.p50 / base.p50:.1f}, "
              f"p99 x{top.p99 / base.p99:.1f}, open s x{top.connect / base.connect:.1f} "
              f"for x{top.streams / base.streams:.0f} streams "
              f"({ms(base.connect / base.streams)} -> {ms(top.connect / top.streams)} ms a stream), "
              f"RSS x{top.rss / base.rss:.2f}, web Redis connections {base.redis_web} -> {top.redis_web}\n")
    else:
        print()
    complete = len(measured) == len(rows) and all(r.all_delivered for r in rows)
    most = max(rows, key=lambda r: r.ready)
    top = measured[-1] if measured else None
    k1, k2 = at(rows, 1000), at(rows, 2000)
    results = [
        verdict(">= 2000 streams, every update delivered", bool(top and top.streams >= 2000 and complete),
                f"{most.ready} of {most.streams} streams open"
                + (f", {top.delivered}/{top.expected} deliveries at {top.streams}, "
                   f"{sum(r.errors for r in rows)} errors" if top else "")),
        verdict("1000 streams: p50 <= 5 ms and p99 <= 50 ms", bool(k1 and k1.p50 <= 0.005 and k1.p99 <= 0.05),
                f"p50 {ms(k1.p50)} ms, p99 {ms(k1.p99)} ms" if k1 else not_run),
        verdict("2000 streams: p99 <= 100 ms", bool(k2 and k2.p99 <= 0.1),
                f"p99 {ms(k2.p99)} ms (max {ms(k2.max)} ms)" if k2 else not_run),
        verdict("all 2000 streams open within 3 s", bool(k2 and k2.connect <= 3.0),
                f"{k2.connect:.2f} s" if k2 else not_run),
    ]
    if top and measured:
        base = measured[0]
        results += [
            verdict("constant Redis connections (< 1 more per 100 more streams)",
                    max(r.redis_web for r in measured) - base.redis_web < max(top.streams - base.streams, 100) / 100,
                    " -> ".join(str(r.redis_web) for r in measured) + " (web worker), "
                    + " -> ".join(str(r.redis_total) for r in measured) + " (CLIENT LIST)"),
            verdict("RSS < 300 MB", top.rss < 300, f"{top.rss:.0f} MB at {top.streams} streams"),
        ]
    else:
        results += [verdict(target, False, not_run) for target in ("constant Redis connections", "RSS < 300 MB")]
    return harness.exit_code(results)


if __name__ == "__main__":
    raise SystemExit(main())
