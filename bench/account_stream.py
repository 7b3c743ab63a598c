"""The account stream: 1,000 open ``GET /api/v1/events`` streams on one web process while 50 tasks run.

Starts a private Redis, a temporary SQLite database (or ``DATABASE_URL``) and ONE web process
(``gunicorn -k gevent -w 1``, as ``make run`` and bench/stream_fanout.py start it), makes
``--accounts`` accounts (default 50) with one queued task each (``tasks.service.queue_task``,
as the API queues them; no worker runs, so they stay PENDING and alive), and measures two levels
with the same load, one after the other, in the same run:

- **account**: ``--streams`` streams (default 1,000) of ``GET /api/v1/events``, spread evenly over
  the accounts (20 an account by default: the tabs of a content team), each with its account's
  Bearer token, opened by a client process (``harness/sse_client.py``); a stream is open once it
  has its ``snapshot``;
- **baseline**: the same number of per-task streams (``GET /api/v1/tasks/<id>/events``), the same
  streams per task (each account's streams on its task): the same deliveries, through the stream
  every client used before the account stream existed.

Each level: a first round of updates (every task once), then ``--seconds`` seconds of updates,
``--rate`` per task per second (default 2: 100 writes/s, each delivered to 20 streams, 2,000
deliveries/s), written as the worker writes them (``ProgressStore.write_image`` with ``phase_at``
= time.time() just before the write). Latency = arrival of the event's bytes at the client -
``phase_at``. The web worker's RSS and its Redis connections are sampled every second (and its
idle Redis connections before the first stream); after each level the client leaves and the
runner measures how long until the web worker holds no stream ("freed s").

Targets: every event delivered to every stream; account streams p99 <= 50 ms; Redis connections
constant: the web worker's connections to Redis are its pools' (the one listener, and the
connections the burst of 1,000 stream openings used at once), not one per stream — fewer than one
per 20 streams and no more than with the per-task streams; the account stream costs no more than
the per-task streams at the same load (p99 within x1.5; both figures and the ratio printed).
Run: ``.venv/bin/python bench/account_stream.py [--streams 1000] [--accounts 50] [--rate 2] [--seconds 15]``.
"""

from __future__ import annotations

import argparse
import time

import harness
from harness import Stack, fanout, ms, table, verdict
from harness.fanout import Level, Run


def open_level(stack: Stack, web: harness.Web, system: str, paths: list[str], tokens: list[str],
               tasks: list, subscribers: list[int], rate: int) -> Run:
    """A client process with ``paths`` open (each with its token); ``rate`` writes per task per second."""
    config: dict[str, object] = {"port": web.port, "tokens": tokens, "ready_on": "snapshot", "measure": "image",
                                 "paths": paths}
    run = Run(Level(system, len(paths), len(tasks)), stack, web, config, tasks * rate, subscribers * rate,
              fanout.igny8_writer(stack))
    run.proc.read()  # started
    run.opened(run.proc.read())
    return run


def measure(run: Run, seconds: float, web: harness.Web) -> Level:
    try:
        if run.level.complete:
            run.first_round()
            run.measure(seconds)
            run.finish()
    finally:
        run.close()
    if run.level.complete:
        run.release(lambda: fanout.held_streams(web))
    return run.level


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000, help="open streams per level")
    parser.add_argument("--accounts", type=int, default=50, help="accounts (one running task each)")
    parser.add_argument("--rate", type=int, default=2, help="updates per task per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds of updates per level")
    args = parser.parse_args()
    started = time.monotonic()
    with Stack() as stack:
        web = stack.web(nofile=2 * args.streams + 1024)
        accounts = [stack.account(f"Team {n}") for n in range(args.accounts)]
        tasks = [harness.queue_tasks(stack, who["account_id"], 1)[0] for who in accounts]
        idle_redis = fanout.redis_connections(stack, web.worker_pid())
        owner = [n % args.accounts for n in range(args.streams)]  # stream i belongs to account owner[i]
        tokens = [accounts[a]["token"] for a in owner]
        subscribers = [owner.count(a) for a in range(args.accounts)]  # streams reached by each task's writes
        print(f"{args.accounts} accounts, {len(tasks)} tasks, {args.streams} streams "
              f"({args.streams // args.accounts} an account); web worker idle Redis connections "
              f"{idle_redis[1]} (all clients {idle_redis[0]})", flush=True)
        levels = []
        for system, paths in (("account", ["/api/v1/events"] * args.streams),
                              ("baseline", [f"/api/v1/tasks/{tasks[a][0]}/events" for a in owner])):
            print(f"{system}: {args.streams} streams ...", flush=True)
            levels.append(measure(open_level(stack, web, system, paths, tokens, tasks, subscribers, args.rate),
                                  args.seconds, web))
    code = report(levels, idle_redis[1], args)
    print(f"\n(run took {time.monotonic() - started:.0f} s)")
    return code


def report(levels: list[Level], idle_web_redis: int, args: argparse.Namespace) -> int:
    account, baseline = levels
    table(f"{args.streams} streams on one gevent web process, {args.accounts} accounts, one task each, "
          f"{args.rate} updates per task per second",
          ["stream", *fanout.ROW_HEADERS], [[lv.system, *lv.row()] for lv in levels])
    print(fanout.ROW_NOTES)
    print("account: GET /api/v1/events (every task of the account); baseline: GET /api/v1/tasks/<id>/events "
          "(the same streams per task, the same writes)")
    both = account.complete and baseline.complete
    if both:
        print(f"\nratio account / baseline: p50 x{account.p50 / baseline.p50:.2f}, "
              f"p99 x{account.p99 / baseline.p99:.2f}, "
              f"CPU x{account.cpu / baseline.cpu:.2f}, RSS x{account.rss / baseline.rss:.2f}; web worker Redis "
              f"connections idle {idle_web_redis} -> {account.redis_web} (account) / {baseline.redis_web} (baseline)\n")
    results = [
        verdict("every event delivered to every account stream", account.all_delivered,
                f"{account.delivered}/{account.expected} deliveries, {account.ready}/{account.streams} open, "
                f"{account.errors} errors"),
        verdict("account streams p99 <= 50 ms", account.complete and account.p99 <= 0.05,
                f"p50 {ms(account.p50)} ms, p99 {ms(account.p99)} ms, max {ms(account.max)} ms"),
        verdict("constant Redis connections (the web worker's pools, not one per stream: < 1 per 20 streams, "
                "and no more than the per-task baseline's)",
                both and account.redis_web < account.streams / 20 and account.redis_web <= baseline.redis_web,
                f"{idle_web_redis} idle -> {account.redis_web} with {account.streams} account streams "
                f"({baseline.redis_web} with the per-task streams)"),
        verdict("no dearer than the per-task streams at the same load (p99 within x1.5)",
                both and account.p99 <= 1.5 * baseline.p99,
                f"p99 {ms(account.p99)} vs {ms(baseline.p99)} ms" if both else "not measured"),
        verdict("every client that left freed within 20 s", account.complete and account.freed <= 20,
                f"{account.freed:.1f} s"),
    ]
    return harness.exit_code(results)


if __name__ == "__main__":
    raise SystemExit(main())
