"""Stream fan-out: how many event streams one gunicorn gevent web process holds, and at what cost.

Starts a private Redis, a temporary SQLite database (or ``DATABASE_URL``) and ONE web process
(``gunicorn -k gevent -w 1 --worker-connections 4000``, fd limit raised), and queues N/10
one-image tasks the way the API does (they stay PENDING: no worker runs). For each N (default
100, 1000, 2000; ``--clients 100,500`` overrides):

- a client process (this script with ``--as-client``: one asyncio loop, raw sockets, no extra
  dependency) opens N streams ``GET /api/v1/tasks/<id>/events`` with a Bearer token, spread
  evenly over the N/10 tasks, and reports READY once every stream has its snapshot;
- this process then writes one progress update per task per second for ``--seconds`` seconds
  (``ProgressStore.write_image`` with ``phase_at`` = time.time(), as the worker writes), so each
  update fans out to ~10 streams; latency = arrival at the client - ``phase_at``;
- meanwhile it samples the resident memory of the gunicorn *worker* (not the master) and the
  Redis connections: ``CLIENT LIST`` on the bench Redis (every client, ours included) and the
  web worker's own TCP connections to Redis (psutil).

After each level the client disconnects and the runner waits (up to 40 s) until the web worker
has let go of every stream ("freed s": a stream whose client left is noticed at its next write,
at the latest the 15 s keepalive).

Baseline for the ratios: the same measures at N = the smallest level (100). Targets: >= 2000
streams, delivery p99 <= 200 ms, constant Redis connections (bounded by the pools, not one per
stream: fewer than 1 more per 100 more streams), RSS < 300 MB.
Run: ``.venv/bin/python bench/stream_fanout.py [--clients 100,1000,2000] [--seconds 15]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import threading
import time
from typing import Any

import harness
import psutil
from harness import Stack, ms, pct, table, verdict

from igny8.progress.schema import QueueItem
from igny8.progress.store import ProgressStore

CONNECTING_AT_ONCE = 100  # streams being opened concurrently by the client (the rest wait)
STALL_SECONDS = 20.0  # the client gives up when no stream got its snapshot for this long


# ---------------------------------------------------------------- the client process

async def client(port: int, token: str, task_ids: list[str], count: int) -> dict[str, Any]:
    latencies: list[float] = []
    state = {"snapshots": 0, "errors": 0, "ended": 0}
    all_ready = asyncio.Event()
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)

    async def stream(index: int) -> None:
        path = f"/api/v1/tasks/{task_ids[index % len(task_ids)]}/events"
        await gate.acquire()
        released = False
        try:
            reader, writer = await harness.open_stream(port, path, token)
            try:
                async for event, data, received in harness.sse_events(reader):
                    if event == "snapshot":
                        gate.release()
                        released = True
                        state["snapshots"] += 1
                        if state["snapshots"] == count:
                            all_ready.set()
                    elif event == "image":
                        sent = harness.sent_at(data)
                        if sent:
                            latencies.append(received - sent)
                state["ended"] += 1  # the server ended a stream: a failure here
            finally:
                writer.close()
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            state["errors"] += 1
        finally:
            if not released:
                gate.release()

    started = time.monotonic()
    tasks = [asyncio.create_task(stream(i)) for i in range(count)]
    seen = -1
    while state["snapshots"] > seen and not all_ready.is_set():  # give up after STALL s without progress
        seen = state["snapshots"]
        try:
            await asyncio.wait_for(all_ready.wait(), timeout=STALL_SECONDS)
        except TimeoutError:
            pass
    print(json.dumps({"ready": state["snapshots"], "connect_seconds": time.monotonic() - started}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # until the runner says stop
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"latencies": latencies, **state}


def client_main(args: argparse.Namespace) -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = asyncio.run(client(args.port, args.token, args.tasks.split(","), args.clients_n))
    print(json.dumps(result), flush=True)
    return 0


# ---------------------------------------------------------------- the runner

def redis_connections(stack: Stack, web_pid: int) -> tuple[int, int]:
    """(every client of the bench Redis, the web worker's own connections to it)."""
    total = len(stack.redis.client_list())
    port = stack.redis_server.port
    own = sum(1 for c in psutil.Process(web_pid).net_connections("tcp") if c.raddr and c.raddr.port == port)
    return total, own


def open_streams(web: harness.Web) -> int:
    """TCP connections the web worker still holds for clients (a stream that lost its client is
    only noticed at its next write: an event, or the 15 s keepalive)."""
    conns = psutil.Process(web.worker_pid()).net_connections("tcp")
    return sum(1 for c in conns if c.laddr and c.laddr.port == web.port and c.raddr)


def wait_released(web: harness.Web, limit: float = 40.0) -> float:
    start = time.monotonic()
    while open_streams(web) and time.monotonic() - start < limit:
        time.sleep(0.5)
    return time.monotonic() - start


def write_updates(stack: Stack, tasks: list[tuple[str, QueueItem]], seconds: float) -> int:
    """Each task gets one update per second, the writes spread evenly over the second."""
    store, written = ProgressStore(stack.redis), 0
    gap, start = 1.0 / len(tasks), time.monotonic()
    while time.monotonic() - start < seconds:
        for task_id, item in tasks:
            due = start + written * gap
            time.sleep(max(0.0, due - time.monotonic()))
            item.progress, item.phase_at = written % 100, time.time()
            store.write_image(task_id, item)
            written += 1
    return written


def run_level(stack: Stack, web: harness.Web, token: str, tasks: list[tuple[str, QueueItem]], count: int,
              seconds: float) -> dict[str, Any]:
    level_tasks = tasks[:max(1, count // 10)]
    command = [sys.executable, __file__, "--as-client", "--port", str(web.port), "--token", token,
               "--tasks", ",".join(t for t, _ in level_tasks), "--clients-n", str(count)]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        ready = json.loads(proc.stdout.readline() or "{}")
        if ready.get("ready") != count:  # the web process stopped accepting streams: no figures
            return {"n": count, "ready": ready.get("ready", 0), "connect": ready.get("connect_seconds", 0)}
        pid = web.worker_pid()
        samples: list[tuple[int, int, int]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(1.0):
                samples.append((psutil.Process(pid).memory_info().rss, *redis_connections(stack, pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        written = write_updates(stack, level_tasks, seconds)
        time.sleep(1.0)
        done.set()
        sampler.join(5)
        out, _err = proc.communicate("stop\n", timeout=60)
        result = json.loads(out.strip().splitlines()[-1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    released = wait_released(web)
    lat = result["latencies"]
    return {"n": count, "ready": count, "connect": ready["connect_seconds"], "written": written, "delivered": len(lat),
            "expected": written * count // len(level_tasks), "p50": pct(lat, 50), "p99": pct(lat, 99),
            "max": max(lat) if lat else float("nan"), "rss": max(s[0] for s in samples) / 2**20,
            "redis_total": max(s[1] for s in samples), "redis_web": max(s[2] for s in samples),
            "errors": result["errors"] + result["ended"], "released": released}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="100,1000,2000", help="comma-separated stream counts")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds of updates per level")
    parser.add_argument("--as-client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--tasks", help=argparse.SUPPRESS)
    parser.add_argument("--clients-n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.as_client:
        return client_main(args)
    levels = sorted(int(n) for n in args.clients.split(","))
    rows: list[dict[str, Any]] = []
    with Stack() as stack:
        web = stack.web(nofile=2 * max(levels) + 1024)
        account = stack.account("Fanout")
        tasks = harness.queue_tasks(stack, account["account_id"], max(1, max(levels) // 10))
        idle_rss = psutil.Process(web.worker_pid()).memory_info().rss / 2**20
        for count in levels:
            print(f"{count} streams ...", flush=True)
            rows.append(run_level(stack, web, account["token"], tasks, count, args.seconds))
            if rows[-1]["ready"] < count:
                errors = [line for line in web.log_path.read_text(errors="replace").splitlines() if "Error" in line]
                print(f"only {rows[-1]['ready']} of {count} streams got their snapshot; stopping here. "
                      f"Last error in the web log: {errors[-1] if errors else '(none)'}")
                break
    return report(rows, idle_rss)


def report(rows: list[dict[str, Any]], idle_rss: float) -> int:
    measured = [r for r in rows if r["ready"] == r["n"]]
    table(f"Event streams on one gevent web process (idle worker RSS {idle_rss:.0f} MB)",
          ["streams", "open", "connect s", "updates", "delivered", "p50 ms", "p99 ms", "max ms", "RSS MB",
           "Redis conns (all/web)", "errors", "freed s"],
          [[r["n"], r["ready"], f"{r['connect']:.1f}", r["written"], f"{r['delivered']}/{r['expected']}",
            ms(r["p50"]), ms(r["p99"]), ms(r["max"]), f"{r['rss']:.0f}", f"{r['redis_total']}/{r['redis_web']}",
            r["errors"], f"{r['released']:.0f}"] if r["ready"] == r["n"]
           else [r["n"], r["ready"], f"{r['connect']:.1f}"] + ["-"] * 9
           for r in rows])
    if not measured:
        figure = f"not measured: only {rows[0]['ready']} of {rows[0]['n']} streams could open"
        return harness.exit_code([verdict(target, False, figure) for target in (
            ">= 2000 streams", "p99 <= 200 ms", "constant Redis connections", "RSS < 300 MB")])
    base, top = measured[0], measured[-1]
    print(f"\nratio {top['n']} vs {base['n']} streams: p99 x{top['p99'] / base['p99']:.1f}, "
          f"RSS x{top['rss'] / base['rss']:.2f}, web Redis connections {base['redis_web']} -> {top['redis_web']}\n")
    complete = len(measured) == len(rows) and all(r["delivered"] == r["expected"] and not r["errors"] for r in rows)
    most = max(rows, key=lambda r: r["ready"])
    results = [
        verdict(">= 2000 streams, every update delivered", top["n"] >= 2000 and complete,
                f"{most['ready']} of {most['n']} streams open, {top['delivered']}/{top['expected']} deliveries "
                f"at {top['n']}, {top['errors']} errors"),
        verdict("p99 <= 200 ms", top["p99"] <= 0.2, f"{ms(top['p99'])} ms at {top['n']} streams"),
        verdict("constant Redis connections (< 1 more per 100 more streams)",
                max(r["redis_web"] for r in measured) - base["redis_web"] < max(top["n"] - base["n"], 100) / 100,
                " -> ".join(str(r["redis_web"]) for r in measured) + " (web worker), "
                + " -> ".join(str(r["redis_total"]) for r in measured) + " (CLIENT LIST)"),
        verdict("RSS < 300 MB", top["rss"] < 300, f"{top['rss']:.0f} MB at {top['n']} streams"),
    ]
    return harness.exit_code(results)


if __name__ == "__main__":
    raise SystemExit(main())
