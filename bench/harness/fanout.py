"""The runner side of the stream fan-out benchmarks (``stream_fanout.py``, ``fanout_vs_flask_sse.py``).

One level of one system: N streams opened by a client process (``sse_client.ClientProcess``);
once every stream is open, a first round of updates (one per task, spread over a second) that
ends when every stream has received one ("live"); then ``seconds`` of updates, one per task per
second, spread evenly: the measured window (p50/p99/max). Meanwhile the web worker's memory and
Redis connections are sampled. Then the streams are closed and the runner measures the time
until the web worker let go of them.

The first round is reported on its own ("1st p99"): right after a mass open the server may
still be finishing subscriptions, and what a stream sees then is not the steady state.

``run_igny8_level`` measures igny8 (``GET /api/v1/tasks/<id>/events``, updates written with
``ProgressStore.write_image`` as the worker writes them); ``fanout_vs_flask_sse.py`` adds the
peer's opening and writer and shares ``measure``.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import psutil

from igny8.progress.schema import QueueItem
from igny8.progress.store import ProgressStore

from . import Stack, Web, ms, pct
from .sse_client import ClientProcess

T = TypeVar("T")
RELEASE_LIMIT = 40.0  # seconds the runner waits for the web worker to let go of a level's streams
WRITERS = 2  # writer threads: one round trip at a time could not keep 2,000 writes/s on a busy machine
CONNECTION_SCAN_EVERY = 3  # seconds between scans of the worker's sockets (psutil reads every fd: not free)


@dataclasses.dataclass
class Level:
    """The figures of one level of one system."""

    system: str
    streams: int
    tasks: int
    ready: int = 0
    connect: float = 0.0  # seconds until every stream was open (see the benchmarks)
    live: float | None = None  # flask-sse: seconds until PUBSUB NUMSUB counted every subscription
    written: int = 0  # updates written in the measured window
    elapsed: float = 0.0  # seconds the measured window's writes took (``seconds`` when the writer kept up)
    expected: int = 0  # deliveries owed, first round included
    delivered: int = 0  # deliveries that arrived, first round included
    first: list[float] = dataclasses.field(default_factory=list)  # latencies of the first round
    latencies: list[float] = dataclasses.field(default_factory=list)  # latencies of the measured window
    rss: float = float("nan")  # MB, the web worker's highest sample
    redis_total: int = 0  # CLIENT LIST, highest sample
    redis_web: int = 0  # the web worker's own TCP connections to Redis, highest sample
    errors: int = 0
    freed: float = float("nan")
    cpu: float = float("nan")  # the web worker's CPU in the window, % of one core
    others: float = float("nan")  # % of the machine's CPU used by processes not in this run, in the window

    @property
    def complete(self) -> bool:
        return self.ready == self.streams

    @property
    def all_delivered(self) -> bool:
        return self.complete and self.delivered == self.expected and not self.errors

    @property
    def p50(self) -> float:
        return pct(self.latencies, 50)

    @property
    def p99(self) -> float:
        return pct(self.latencies, 99)

    @property
    def max(self) -> float:
        return max(self.latencies) if self.latencies else float("nan")

    @property
    def rate(self) -> float:
        return self.written / self.elapsed if self.elapsed else float("nan")

    def row(self) -> list[object]:
        """The cells of ``ROW_HEADERS``."""
        head: list[object] = [self.streams, self.tasks, self.ready, f"{self.connect:.2f}"]
        if not self.complete:
            return head + ["-"] * (len(ROW_HEADERS) - len(head))
        return head + [self.written, f"{self.rate:.0f}", f"{self.delivered}/{self.expected}", ms(self.p50),
                       ms(self.p99), ms(self.max), ms(pct(self.first, 99)), f"{self.rss:.0f}",
                       f"{self.redis_total}/{self.redis_web}", self.errors, f"{self.freed:.1f}", f"{self.cpu:.0f}",
                       f"{self.others:.0f}"]


ROW_HEADERS = ["streams", "tasks", "open", "open s", "updates", "upd/s", "delivered", "p50 ms", "p99 ms", "max ms",
               "1st p99", "RSS MB", "Redis conns (all/web)", "errors", "freed s", "CPU %", "others %"]
ROW_NOTES = """\
open s: until every stream was open; updates, upd/s: the measured window's writes and the rate the writer
achieved (the aim: 1 per task per second); delivered: arrived / owed, first round included; p50/p99/max: the
measured window; 1st p99: the first round, right after the open; freed s: until the web worker let go of
every stream once the client had left; CPU %: the web worker's CPU time in the measured window (100 = one
core); others %: the machine's CPU (100 = both cores) that processes outside this run took in the measured
window (other engineers' test suites: the noise in these figures)"""


def spread(tasks: Sequence[T], streams: int, per_task: int) -> tuple[list[T], list[T], list[int]]:
    """(the level's tasks, the task of each stream, the streams of each task): ceil(streams /
    per_task) tasks, stream i on task i mod that, so every task has ``per_task`` streams (the last
    ones one fewer at most)."""
    needed = max(1, -(-streams // per_task))
    if len(tasks) < needed:
        raise ValueError(f"{streams} streams at {per_task} per task need {needed} tasks, not {len(tasks)}")
    level_tasks = list(tasks[:needed])
    subscribers = [streams // needed + (1 if j < streams % needed else 0) for j in range(needed)]
    return level_tasks, [level_tasks[i % needed] for i in range(streams)], subscribers


def expected_deliveries(writes: int, subscribers: Sequence[int]) -> int:
    """Deliveries owed for ``writes`` round-robin writes over tasks with these subscriber counts."""
    rounds, rest = divmod(writes, len(subscribers))
    return rounds * sum(subscribers) + sum(subscribers[:rest])


def paced_writes(keys: Sequence[T], seconds: float, write: Callable[[T], None], threads: int = WRITERS
                 ) -> tuple[int, float]:
    """``seconds`` rounds of ``write``, one per key per second, round-robin, the writes spread evenly
    (write i is due at i / len(keys) s), shared by ``threads`` writer threads (write i by thread
    i mod threads). A writer that falls behind writes at once (each write carries its own send
    time, so latency stays honest). Returns (writes, seconds they took)."""
    count, gap = max(1, round(seconds * len(keys))), 1.0 / len(keys)
    start = time.monotonic()

    def writer(first: int) -> None:
        for i in range(first, count, threads):
            time.sleep(max(0.0, start + i * gap - time.monotonic()))
            write(keys[i % len(keys)])

    workers = [threading.Thread(target=writer, args=(w,), daemon=True, name=f"writer-{w}") for w in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return count, time.monotonic() - start


def redis_connections(stack: Stack, pid: int) -> tuple[int, int]:
    """(every client of the bench Redis, the process ``pid``'s own TCP connections to it)."""
    total = len(stack.redis.client_list())
    port = stack.redis_server.port
    own = sum(1 for c in psutil.Process(pid).net_connections("tcp") if c.raddr and c.raddr.port == port)
    return total, own


def held_streams(web: Web) -> int:
    """TCP connections from clients the web worker still holds (a stream whose client left is only
    noticed when the server next writes to it)."""
    conns = psutil.Process(web.worker_pid()).net_connections("tcp")
    return sum(1 for c in conns if c.laddr and c.laddr.port == web.port and c.raddr)


class Sampler(threading.Thread):
    """Every second: the RSS of the web worker and the Redis connections (all / the worker's)."""

    def __init__(self, stack: Stack, web: Web) -> None:
        super().__init__(daemon=True, name="sampler")
        self.stack, self.pid = stack, web.worker_pid()
        self.samples: list[tuple[float, int, int]] = []
        self.done = threading.Event()

    def sample(self, scan: bool = True) -> None:
        rss = psutil.Process(self.pid).memory_info().rss / 2**20
        if scan or not self.samples:
            total, own = redis_connections(self.stack, self.pid)
        else:  # the worker's own connections as last scanned; CLIENT LIST is cheap
            total, own = len(self.stack.redis.client_list()), self.samples[-1][2]
        self.samples.append((rss, total, own))

    def run(self) -> None:
        tick = 0
        while not self.done.wait(1.0):
            self.sample(scan=tick % CONNECTION_SCAN_EVERY == 0)
            tick += 1

    def finish(self, level: Level) -> None:
        self.done.set()
        self.join(5)
        self.sample()  # one last scan: the state at the end of the window
        level.rss = max(s[0] for s in self.samples)
        level.redis_total = max(s[1] for s in self.samples)
        level.redis_web = max(s[2] for s in self.samples)


def release(held: Callable[[], int], nudge: Callable[[], None], limit: float = RELEASE_LIMIT) -> float:
    """Seconds until ``held()`` is 0, calling ``nudge()`` (one write to every stream: a server sees
    that a client left only when it writes to it) about once a second meanwhile."""
    start = time.monotonic()
    while held() and time.monotonic() - start < limit:
        nudge()
        time.sleep(1.0)
    return time.monotonic() - start


def igny8_writer(stack: Stack) -> Callable[[tuple[str, QueueItem]], None]:
    """One progress update of a task, as the worker writes it: ``phase_at`` = time.time() just before."""
    store = ProgressStore(stack.redis)
    count = 0

    def write(task: tuple[str, QueueItem]) -> None:
        nonlocal count
        task_id, item = task
        count += 1
        store.write_image(task_id, dataclasses.replace(item, progress=count % 100, phase_at=time.time()))

    return write


class OtherLoad:
    """The share of the machine's CPU used by processes outside this run (this process and every
    process it started: Redis, the web processes, the clients) between ``__init__`` and
    ``percent()``: how busy the rest of the machine kept it."""

    def __init__(self) -> None:
        me = psutil.Process(os.getpid())
        self.procs = [me, *me.children(recursive=True)]
        self.start = self._now()

    def _now(self) -> tuple[float, float, float]:
        times = psutil.cpu_times()
        busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
        ours = 0.0
        for proc in self.procs:
            try:
                cpu = proc.cpu_times()
                ours += cpu.user + cpu.system
            except psutil.Error:
                pass
        return time.monotonic(), busy, ours

    def percent(self) -> float:
        (t0, busy0, ours0), (t1, busy1, ours1) = self.start, self._now()
        return max(0.0, 100 * ((busy1 - busy0) - (ours1 - ours0)) / ((t1 - t0) * (psutil.cpu_count() or 1)))


class Run:
    """One level of one system in progress: its client process (its streams), the sampler of its
    web worker, and the figures of its measured window so far. ``open_igny8`` (and the peer's
    opener in fanout_vs_flask_sse.py) makes one; then ``first_round``, ``measure`` (the window may
    be measured in several calls), ``finish``, ``release``; ``close`` always."""

    def __init__(self, level: Level, stack: Stack, web: Web, config: dict[str, object], level_tasks: Sequence[T],
                 subscribers: Sequence[int], write: Callable[[T], None]) -> None:
        self.level, self.stack, self.web = level, stack, web
        self.level_tasks, self.subscribers, self.write = list(level_tasks), list(subscribers), write
        self.proc = ClientProcess(config)
        self.first_writes, self.window, self.cpu_seconds, self.other_seconds = 0, 0.0, 0.0, 0.0
        self.sampler: Sampler | None = None

    def opened(self, ready: dict[str, float]) -> bool:
        """Note the client's "ready" line; True when every stream opened."""
        self.level.ready, self.level.connect = int(ready.get("ready", 0)), float(ready.get("connect_seconds", 0.0))
        return self.level.complete

    def first_round(self) -> None:
        """Every stream is open: one update per task, until every stream has received one."""
        self.sampler = Sampler(self.stack, self.web)
        self.sampler.start()
        self.first_writes, _took = paced_writes(self.level_tasks, 1.0, self.write)
        live = self.proc.read()
        if live.get("live") != self.level.streams:
            print(f"{self.level.system}: only {live.get('live', 0)} of {self.level.streams} streams got an update "
                  f"of the first round", flush=True)
        self.window = time.time()  # what is sent from now on is the measured window

    def measure(self, seconds: float) -> None:
        """``seconds`` of updates (one per task per second) in the measured window."""
        load = OtherLoad()
        cpu = self.worker_cpu()
        written, elapsed = paced_writes(self.level_tasks, seconds, self.write)
        self.cpu_seconds += self.worker_cpu() - cpu
        self.other_seconds += load.percent() * elapsed
        self.level.written += written
        self.level.elapsed += elapsed

    def worker_cpu(self) -> float:
        """CPU seconds the web worker has used so far."""
        times = psutil.Process(self.web.worker_pid()).cpu_times()
        return float(times.user + times.system)

    def finish(self) -> None:
        """The last deliveries, then the client's figures."""
        level = self.level
        time.sleep(1.0)
        assert self.sampler is not None
        self.sampler.finish(level)
        result = self.proc.finish()
        samples = result["samples"]
        level.first = [latency for sent, latency in samples if sent < self.window]
        level.latencies = [latency for sent, latency in samples if sent >= self.window]
        level.expected = (expected_deliveries(self.first_writes, self.subscribers)
                          + expected_deliveries(level.written, self.subscribers))
        level.delivered, level.errors = len(samples), result["errors"] + result["ended"]
        level.cpu = 100 * self.cpu_seconds / level.elapsed if level.elapsed else float("nan")
        level.others = self.other_seconds / level.elapsed if level.elapsed else float("nan")

    def release(self, held: Callable[[], int]) -> None:
        """Until the web worker holds none of the streams: one write per task a second meanwhile."""

        def nudge() -> None:
            for task in self.level_tasks:
                self.write(task)

        self.level.freed = release(held, nudge)

    def close(self) -> None:
        self.proc.__exit__()
        if self.sampler is not None:
            self.sampler.done.set()


def open_igny8(stack: Stack, web: Web, token: str, tasks: Sequence[tuple[str, QueueItem]], streams: int,
               per_task: int) -> Run:
    """``streams`` streams of ``/api/v1/tasks/<id>/events``, ``per_task`` per task, opened; a stream
    is open once it has its ``snapshot``. The caller closes the run."""
    level_tasks, stream_tasks, subscribers = spread(tasks, streams, per_task)
    config: dict[str, object] = {"port": web.port, "token": token, "ready_on": "snapshot", "measure": "image",
                                 "paths": [f"/api/v1/tasks/{task_id}/events" for task_id, _item in stream_tasks]}
    run = Run(Level("igny8", streams, len(level_tasks)), stack, web, config, level_tasks, subscribers,
              igny8_writer(stack))
    run.proc.read()  # started
    run.opened(run.proc.read())
    return run


def run_igny8_level(stack: Stack, web: Web, token: str, tasks: Sequence[tuple[str, QueueItem]], streams: int,
                    per_task: int, seconds: float) -> Level:
    """One level of igny8 alone: open, first round, ``seconds`` measured, release."""
    run = open_igny8(stack, web, token, tasks, streams, per_task)
    try:
        if not run.level.complete:  # the web process stopped accepting streams: no figures
            return run.level
        run.first_round()
        run.measure(seconds)
        run.finish()
    finally:
        run.close()
    run.release(lambda: held_streams(web))
    return run.level


def last_error(web: Web) -> str:
    errors = [line for line in web.log_path.read_text(errors="replace").splitlines() if "Error" in line]
    return errors[-1] if errors else "(none)"
