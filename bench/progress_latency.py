"""Progress latency: from a worker's progress write to the moment a client sees it.

Starts a private Redis, a temporary SQLite database (or ``DATABASE_URL``) and the app under
``gunicorn -k gevent -w 1`` on 127.0.0.1, and queues two one-image tasks the way the API does
(``tasks.service.queue_task``: a GenerationTask row, the progress hashes, an RQ job that no worker
takes, so the tasks stay PENDING and alive).

1. Event stream: one client reads ``GET /api/v1/tasks/<id>/events`` (raw asyncio socket,
   Bearer token) while this process writes ``--updates`` progress updates exactly as the worker
   does (``ProgressStore.write_image``), one every 5-10 ms (random), each carrying ``phase_at`` =
   ``time.time()`` just before the write. Latency = arrival of the event's bytes - ``phase_at``.
2. Baseline, measured in the same run: a client polling ``GET /api/v1/system/settings/
   task_progress/<id>/`` every second (the seed's design) while ``--polls`` updates are written
   at random moments 1.1-1.9 s apart. Delay = when the poll answer shows the update - ``phase_at``.

Prints p50/p99/max of both and the ratio. Targets: stream p50 <= 5 ms, p99 <= 25 ms, and at
least 100x better than polling (p50 against p50).
Run: ``.venv/bin/python bench/progress_latency.py [--updates 1500] [--polls 40]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import threading
import time

import harness
import requests
from harness import Stack, ms, pct, table, verdict
from redis import Redis

from igny8.progress.schema import QueueItem
from igny8.progress.store import ProgressStore

WARMUP = 50  # first stream updates, not counted (connection and code paths warm up)

BENCH_NOTE = "bench "  # + the sequence number of the write

class StreamProbe(threading.Thread):
    """One SSE client in its own thread and event loop; records latency per sequence number (in ``note``)."""

    def __init__(self, port: int, task_id: str, token: str) -> None:
        super().__init__(daemon=True, name="sse-probe")
        self.port, self.path, self.token = port, f"/api/v1/tasks/{task_id}/events", token
        self.latency: dict[int, float] = {}
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.main: asyncio.Task[None] | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported by the main thread
            self.error = exc
            self.ready.set()

    async def _run(self) -> None:
        self.loop, self.main = asyncio.get_running_loop(), asyncio.current_task()
        reader, writer = await harness.open_stream(self.port, self.path, self.token)
        try:
            async for event, data, received in harness.sse_events(reader):
                if event == "snapshot":
                    self.ready.set()
                elif event == "image":
                    payload = json.loads(data)
                    if (payload.get("note") or "").startswith(BENCH_NOTE):
                        seq = int(payload["note"][len(BENCH_NOTE):])
                        self.latency[seq] = received - float(payload["phase_at"])
        finally:
            writer.close()

    def stop(self) -> None:
        if self.loop is not None and self.main is not None:
            self.loop.call_soon_threadsafe(self.main.cancel)
        self.join(5)


def write(store: ProgressStore, task_id: str, item: QueueItem, seq: int) -> None:
    item.status, item.phase, item.progress, item.note = "processing", "request_sent", seq % 100, f"{BENCH_NOTE}{seq}"
    item.phase_at = time.time()
    store.write_image(task_id, item)


def measure_stream(stack: Stack, port: int, token: str, task_id: str, item: QueueItem,
                   updates: int) -> list[float]:
    probe = StreamProbe(port, task_id, token)
    probe.start()
    if not probe.ready.wait(30) or probe.error:
        raise RuntimeError(f"the event stream did not start: {probe.error!r}")
    store = ProgressStore(stack.redis)
    try:
        for seq in range(WARMUP + updates):
            write(store, task_id, item, seq)
            time.sleep(random.uniform(0.005, 0.010))
        deadline = time.monotonic() + 5
        while len(probe.latency) < WARMUP + updates and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        probe.stop()
    lost = WARMUP + updates - len(probe.latency)
    if lost:
        raise RuntimeError(f"the stream lost {lost} of {WARMUP + updates} updates")
    return [probe.latency[seq] for seq in range(WARMUP, WARMUP + updates)]


def measure_polling(stack: Stack, url: str, headers: dict[str, str], task_id: str, item: QueueItem,
                    updates: int) -> list[float]:
    delays: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        session, last, tick = requests.Session(), None, time.monotonic()
        while not stop.is_set():
            body = session.get(f"{url}/api/v1/system/settings/task_progress/{task_id}/", headers=headers,
                               timeout=10).json()
            seen = time.time()
            value = body["meta"]["queue"][0].get("phase_at")
            if value and value != last:
                last = value
                delays.append(seen - float(value))
            tick += 1.0
            stop.wait(max(0.0, tick - time.monotonic()))

    poller = threading.Thread(target=poll, daemon=True, name="poller")
    poller.start()
    store = ProgressStore(stack.redis)
    try:
        for seq in range(updates):
            time.sleep(random.uniform(1.1, 1.9))
            write(store, task_id, item, seq)
        time.sleep(1.5)
    finally:
        stop.set()
        poller.join(15)
    return delays


def measure_redis_floor(stack: Stack, updates: int) -> list[float]:
    """Redis's own write -> blocked reader time: one XADD, one reader blocked on XREAD of that
    stream (its own connection), with the same 5-10 ms pacing. The floor no stream can beat."""
    key, latencies, ready = f"bench:floor:{time.time_ns()}", [], threading.Event()
    reader_redis = Redis.from_url(stack.redis_server.url, decode_responses=True)

    def read() -> None:
        cursor = "$"
        ready.set()
        while len(latencies) < WARMUP + updates:
            for _key, entries in reader_redis.xread({key: cursor}, block=5000) or []:
                for entry_id, fields in entries:
                    latencies.append(time.time() - float(fields["sent_at"]))
                    cursor = entry_id

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    ready.wait(5)
    time.sleep(0.2)
    for _ in range(WARMUP + updates):
        stack.redis.xadd(key, {"sent_at": f"{time.time():.6f}"})
        time.sleep(random.uniform(0.005, 0.010))
    reader.join(10)
    stack.redis.delete(key)
    return latencies[WARMUP:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=1500, help="stream updates measured (default 1500)")
    parser.add_argument("--polls", type=int, default=40, help="updates seen by the polling baseline (default 40)")
    args = parser.parse_args()
    with Stack() as stack:
        web = stack.web()
        account = stack.account("Latency")
        (stream_task, stream_item), (poll_task, poll_item) = harness.queue_tasks(stack, account["account_id"], 2)
        print(f"event stream: {args.updates} updates every 5-10 ms ...", flush=True)
        stream = measure_stream(stack, web.port, account["token"], stream_task, stream_item, args.updates)
        print(f"Redis alone (XADD -> blocked XREAD): {args.updates} writes ...", flush=True)
        floor = measure_redis_floor(stack, args.updates)
        print(f"polling every 1 s: {args.polls} updates at random moments ...", flush=True)
        polled = measure_polling(stack, web.url, account["headers"], poll_task, poll_item, args.polls)
    rows = [[name, len(v), ms(pct(v, 50)), ms(pct(v, 99)), ms(max(v)), ms(sum(v) / len(v))]
            for name, v in (("SSE /tasks/<id>/events", stream), ("Redis alone: XADD -> XREAD", floor),
                            ("polling task_progress, 1 s", polled))]
    table("Progress write -> seen by the client (ms)", ["client", "updates", "p50", "p99", "max", "mean"], rows)
    ratio_p50, ratio_mean = pct(polled, 50) / pct(stream, 50), (sum(polled) / len(polled)) / (sum(stream) / len(stream))
    over_floor = pct(stream, 50) / pct(floor, 50)
    print(f"\nratio polling/SSE: {ratio_p50:.0f}x at p50, {ratio_mean:.0f}x on the mean; "
          f"SSE/Redis alone: {over_floor:.2f}x at p50\n")
    results = [
        verdict("SSE p50 <= 5 ms", pct(stream, 50) <= 0.005, f"{ms(pct(stream, 50))} ms"),
        verdict("SSE p99 <= 25 ms", pct(stream, 99) <= 0.025, f"{ms(pct(stream, 99))} ms"),
        verdict(">= 100x better than polling (p50)", ratio_p50 >= 100, f"{ratio_p50:.0f}x"),
        verdict("SSE p50 within 1.5x of Redis's own write -> blocked reader", over_floor <= 1.5,
                f"{ms(pct(stream, 50))} vs {ms(pct(floor, 50))} ms: {over_floor:.2f}x"),
    ]
    return harness.exit_code(results)


if __name__ == "__main__":
    raise SystemExit(main())
