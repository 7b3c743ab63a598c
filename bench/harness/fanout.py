"""The runner side of the stream fan-out benchmarks (``stream_fanout.py``, ``fanout_vs_flask_sse.py``):
one level = N streams opened by a client process (``sse_client.ClientProcess``), one update per
task per second for ``seconds`` seconds, the web worker's memory and Redis connections sampled
every second, then the streams closed and the time until the web worker let go of them.

``run_igny8_level`` measures igny8 (``GET /api/v1/tasks/<id>/events``, updates written with
``ProgressStore.write_image`` as the worker writes them); ``fanout_vs_flask_sse.py`` adds the
peer's level with the same pieces.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psutil

from igny8.progress.schema import QueueItem
from igny8.progress.store import ProgressStore

from . import Stack, Web, ms, pct
from .sse_client import ClientProcess

T = TypeVar("T")
RELEASE_LIMIT = 40.0  # seconds the runner waits for the web worker to let go of a level's streams


@dataclasses.dataclass
class Level:
    """The figures of one level of one system."""

    system: str
    streams: int
    tasks: int
    ready: int = 0
    connect: float = 0.0  # seconds until every stream was open (see the benchmarks)
    live: float | None = None  # flask-sse: seconds until PUBSUB NUMSUB counted every subscription
    written: int = 0
    expected: int = 0
    latencies: list[float] = dataclasses.field(default_factory=list)
    rss: float = float("nan")  # MB, the web worker's highest sample
    redis_total: int = 0  # CLIENT LIST, highest sample
    redis_web: int = 0  # the web worker's own TCP connections to Redis, highest sample
    errors: int = 0
    freed: float = float("nan")

    @property
    def complete(self) -> bool:
        return self.ready == self.streams

    @property
    def delivered(self) -> int:
        return len(self.latencies)

    @property
    def p50(self) -> float:
        return pct(self.latencies, 50)

    @property
    def p99(self) -> float:
        return pct(self.latencies, 99)

    @property
    def max(self) -> float:
        return max(self.latencies) if self.latencies else float("nan")

    def row(self) -> list[object]:
        """The table cells: streams, tasks, open, open s, updates, delivered, p50, p99, max, RSS,
        Redis connections (all/web), errors, freed s."""
        head: list[object] = [self.streams, self.tasks, self.ready, f"{self.connect:.2f}"]
        if not self.complete:
            return head + ["-"] * 9
        return head + [self.written, f"{self.delivered}/{self.expected}", ms(self.p50), ms(self.p99), ms(self.max),
                       f"{self.rss:.0f}", f"{self.redis_total}/{self.redis_web}", self.errors, f"{self.freed:.1f}"]


ROW_HEADERS = ["streams", "tasks", "open", "open s", "updates", "delivered", "p50 ms", "p99 ms", "max ms",
               "RSS MB", "Redis conns (all/web)", "errors", "freed s"]


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


def paced_writes(keys: Sequence[T], seconds: float, write: Callable[[T], None]) -> int:
    """Each key gets one ``write`` per second, the writes spread evenly over the second, for
    ``seconds``; returns how many were written (round-robin over ``keys``). A writer that falls
    behind catches up at once (its writes carry their own send time, so latency stays honest)."""
    written, gap, start = 0, 1.0 / len(keys), time.monotonic()
    while time.monotonic() - start < seconds:
        for key in keys:
            time.sleep(max(0.0, start + written * gap - time.monotonic()))
            write(key)
            written += 1
    return written


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

    def sample(self) -> None:
        self.samples.append((psutil.Process(self.pid).memory_info().rss / 2**20,
                             *redis_connections(self.stack, self.pid)))

    def run(self) -> None:
        while not self.done.wait(1.0):
            self.sample()

    def finish(self, level: Level) -> None:
        self.done.set()
        self.join(5)
        if not self.samples:
            self.sample()
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
        item.progress, item.phase_at = count % 100, time.time()
        store.write_image(task_id, item)
        count += 1

    return write


def run_igny8_level(stack: Stack, web: Web, token: str, tasks: Sequence[tuple[str, QueueItem]], streams: int,
                    per_task: int, seconds: float, **client: Any) -> Level:
    """One level of igny8: ``streams`` streams of ``/api/v1/tasks/<id>/events``, ``per_task`` per
    task; a stream is open once it has its ``snapshot``."""
    level_tasks, stream_tasks, subscribers = spread(tasks, streams, per_task)
    level = Level("igny8", streams, len(level_tasks))
    config = {"port": web.port, "token": token, "ready_on": "snapshot", "measure": "image",
              "paths": [f"/api/v1/tasks/{task_id}/events" for task_id, _item in stream_tasks], **client}
    write = igny8_writer(stack)
    with ClientProcess(config) as proc:
        proc.read()  # started
        ready = proc.read()
        level.ready, level.connect = ready.get("ready", 0), ready.get("connect_seconds", 0.0)
        if not level.complete:  # the web process stopped accepting streams: no figures
            return level
        sampler = Sampler(stack, web)
        sampler.start()
        level.written = paced_writes(level_tasks, seconds, write)
        time.sleep(1.0)  # the last deliveries
        sampler.finish(level)
        result = proc.finish()
    level.expected = expected_deliveries(level.written, subscribers)
    level.latencies, level.errors = result["latencies"], result["errors"] + result["ended"]

    def nudge() -> None:
        for task in level_tasks:
            write(task)

    level.freed = release(lambda: held_streams(web), nudge)
    return level


def last_error(web: Web) -> str:
    errors = [line for line in web.log_path.read_text(errors="replace").splitlines() if "Error" in line]
    return errors[-1] if errors else "(none)"
