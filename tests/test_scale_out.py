"""Scale-out, shown running: two gunicorn (gevent) web processes and two ``worker.py`` processes
sharing one Redis, one PostgreSQL database and one media folder.

Batches are queued alternately through either web process and followed on the *other* one; the
batches spread across both workers; the provider rate limit (``PROVIDER_LIMIT_LOCAL=2/600``) holds
for both workers together; every image is generated exactly once.

The limit is checked from Redis's own record: a MONITOR connection sees, in the order Redis ran
them, every command of the limiter's script and every release, so replaying the in-flight set's
ZADD/ZREM/ZREMRANGEBYSCORE gives its exact peak (no sampling that could miss a short overlap).

Each process logs to ``web-N.log`` / ``worker-N.log`` in the test's ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import requests
import sseclient
from flask import Flask
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from rq.job import Job
from rq.suspension import resume, suspend
from sqlalchemy import URL, make_url, select

from igny8 import create_app
from igny8.extensions import db
from igny8.models import GenerationTask, Image
from igny8.ops.redis_server import RedisServer
from igny8.redis_client import close_redis
from tests.support.accounts import Accounts
from tests.support.processes import ROOT, WebProcess, WorkerProcess
from tests.support.waiting import wait_for
from tests.support.writer import GENERATE, SETTINGS

pytestmark = pytest.mark.slow

BATCHES = 6
IN_ARTICLE = 2  # plus the featured image: 3 images a batch, 18 in all
LATENCY = 0.4
CONCURRENT_LIMIT = 2
SECRET = "scale-out-secret"


# ---------------------------------------------------------------- PostgreSQL: a database of our own

def _server_url() -> URL:
    """The PostgreSQL server of ``DATABASE_URL`` when it names one (CI's second run), else the
    machine's 127.0.0.1:5432. Only the server is shared: the test makes and drops its own database."""
    configured = os.environ.get("DATABASE_URL", "")
    url = make_url(configured if configured.startswith("postgres") else "postgresql://postgres@127.0.0.1:5432/postgres")
    return url.set(drivername="postgresql+psycopg")


def _admin_connection(url: URL) -> psycopg.Connection:
    return psycopg.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                           dbname="postgres", autocommit=True, connect_timeout=3)


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database (schema by ``flask db upgrade``, as production makes it),
    dropped afterwards with whatever connections are still open to it."""
    server = _server_url()
    try:
        admin = _admin_connection(server)
    except psycopg.OperationalError as exc:
        pytest.fail(f"the scale-out test needs PostgreSQL at {server.host}:{server.port or 5432} "
                    f"(trust auth, user postgres; or set DATABASE_URL to another PostgreSQL server): {exc}")
    name = f"igny8_scale_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------- the processes

@dataclass
class Cluster:
    redis_url: str
    database_url: str
    media_root: Path
    webs: list[WebProcess] = field(default_factory=list)
    workers: list[WorkerProcess] = field(default_factory=list)


@pytest.fixture
def cluster(pg_database: str, tmp_path: Path) -> Iterator[Cluster]:
    """A private Redis, the shared database migrated, then two web and two worker processes, all
    with the same environment. The workers start suspended (RQ's ``rq suspend``) so the test can
    open every stream before any batch runs; ``resume`` lets both go at once."""
    with RedisServer() as redis_server:
        env = dict(os.environ, DATABASE_URL=pg_database, REDIS_URL=redis_server.url, SECRET_KEY=SECRET,
                   MEDIA_ROOT=str(tmp_path / "media"), LOCAL_PROVIDER_LATENCY=str(LATENCY), PROVIDER_TIMEOUT="10",
                   PROVIDER_LIMIT_LOCAL=f"{CONCURRENT_LIMIT}/600", PYTHONUNBUFFERED="1")
        migrate = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "igny8", "db", "upgrade"],
                                 cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        with Redis.from_url(redis_server.url) as control:
            suspend(control)
        cluster = Cluster(redis_server.url, pg_database, tmp_path / "media")
        try:
            for i in range(2):
                cluster.webs.append(WebProcess(env, tmp_path / f"web-{i}.log"))
            for i in range(2):
                cluster.workers.append(WorkerProcess(env, tmp_path / f"worker-{i}.log"))
                cluster.workers[-1].start()
            for web in cluster.webs:  # each web answers, and sees the database and both workers
                wait_for(lambda web=web: (body := web.health()) and body["database"] == "ok" and body["workers"] == 2,
                         timeout=30, message=f"{web.url} to see the database and both workers")
            yield cluster
        finally:
            with ThreadPoolExecutor(max_workers=4) as pool:  # in parallel: each takes about a second
                list(pool.map(lambda process: process.stop(), [*cluster.webs, *cluster.workers]))


# ---------------------------------------------------------------- observing

class InFlightRecorder:
    """Follows Redis MONITOR in a thread and keeps the commands on one limiter key set."""

    END = "scale-out-monitor-end"

    def __init__(self, redis_url: str, key: str) -> None:
        self.redis_url, self.key, self.commands = redis_url, key, []
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True, name="redis-monitor")

    def __enter__(self) -> InFlightRecorder:
        self.thread.start()
        probe = Redis.from_url(self.redis_url)
        wait_for(lambda: probe.echo("scale-out-monitor-start") and self.ready.is_set(), timeout=10,
                 message="MONITOR to start")
        probe.close()
        return self

    def __exit__(self, *_exc: object) -> None:
        with Redis.from_url(self.redis_url) as probe:
            probe.echo(self.END)
        self.thread.join(10)

    def _follow(self) -> None:
        try:
            with Redis.from_url(self.redis_url) as connection, connection.monitor() as monitor:
                for command in monitor.listen():
                    words = command["command"].split(" ")
                    if words == ["ECHO", "scale-out-monitor-start"]:
                        self.ready.set()
                    elif words == ["ECHO", self.END]:
                        return
                    elif len(words) > 1 and words[1] == self.key:
                        self.commands.append((command["time"], words))
        except RedisConnectionError:  # Redis went away under a failing test: the test reports that
            return

    def replay(self) -> tuple[int, list[float]]:
        """Replays the in-flight set: (the most slots held at once, how long each slot was held)."""
        held: dict[str, tuple[float, float]] = {}  # token -> (lease end score, taken at)
        peak, holds = 0, []
        for at, words in self.commands:
            if words[0] == "ZADD":
                held[words[3]] = (float(words[2]), at)
            elif words[0] == "ZREM" and words[2] in held:
                holds.append(at - held.pop(words[2])[1])
            elif words[0] == "ZREMRANGEBYSCORE":  # expired leases (none expected within the test)
                held = {token: lease for token, lease in held.items() if lease[0] > float(words[3])}
            peak = max(peak, len(held))
        return peak, holds


class StreamReader(threading.Thread):
    """Reads one task's JSON event stream to its end with a real SSE client."""

    def __init__(self, base_url: str, headers: dict[str, str], task_id: str) -> None:
        super().__init__(daemon=True, name=f"stream-{task_id}")
        self.base_url, self.headers, self.task_id = base_url, headers, task_id
        self.events: list[tuple[str, dict]] = []
        self.opened = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            response = requests.get(f"{self.base_url}/api/v1/tasks/{self.task_id}/events", stream=True, timeout=30,
                                    headers=dict(self.headers, Accept="text/event-stream"))
            with response:
                assert response.status_code == 200, response.text
                for event in sseclient.SSEClient(response).events():
                    self.events.append((event.event, json.loads(event.data)))
                    self.opened.set()
        except BaseException as exc:  # reported by the test thread
            self.error = exc
        finally:
            self.opened.set()


# ---------------------------------------------------------------- the test, in steps

def _settings_saved_on_one_web_are_read_on_the_other(web_a: str, web_b: str, who: dict) -> None:
    settings = {"provider": "local", "model": "placeholder", "max_in_article_images": IN_ARTICLE,
                "concurrency": 3}
    assert requests.put(web_a + SETTINGS, json=settings, headers=who["headers"], timeout=10).status_code == 200
    assert requests.get(web_b + SETTINGS, headers=who["headers"], timeout=10).json()["config"]["concurrency"] == 3


def _queue_batches_alternately_and_follow_each_on_the_other_web(web_a: str, web_b: str, who: dict
                                                                ) -> tuple[list[int], list[StreamReader]]:
    """BATCHES articles, each queued on one web process while its stream is read on the other;
    returns once every stream is open (its snapshot read), before any batch runs."""
    content_ids, readers = [], []
    for i in range(BATCHES):
        queue_on, follow_on = (web_a, web_b) if i % 2 == 0 else (web_b, web_a)
        body = {"title": f"Batch {i}", "featured_prompt": f"Cover {i}",
                "in_article_prompts": [f"Step {i}.{n}" for n in range(1, IN_ARTICLE + 1)]}
        created = requests.post(f"{queue_on}/api/v1/writer/content/", json=body, headers=who["headers"],
                                timeout=10)
        assert created.status_code == 201, created.text
        content_ids.append(created.json()["id"])
        queued = requests.post(queue_on + GENERATE, json={"content_id": content_ids[-1]},
                               headers=who["headers"], timeout=10)
        assert queued.status_code == 202, queued.text
        assert len(queued.json()["queue"]) == 1 + IN_ARTICLE
        readers.append(StreamReader(follow_on, who["headers"], queued.json()["task_id"]))
        readers[-1].start()
    for reader in readers:  # every stream is open (its snapshot read) before any batch runs
        assert reader.opened.wait(15), f"no snapshot on the stream of {reader.task_id}"
    return content_ids, readers


def _resume_the_workers_and_read_every_stream_to_its_end(cluster: Cluster, readers: list[StreamReader]) -> float:
    """Both suspended workers go at once; the seconds from then until the last stream ended."""
    started = time.monotonic()
    with Redis.from_url(cluster.redis_url) as control:
        resume(control)
    for reader in readers:
        reader.join(max(1.0, 45 - (time.monotonic() - started)))
    return time.monotonic() - started


def _every_stream_saw_its_batch_live_to_done(readers: list[StreamReader]) -> None:
    for reader in readers:
        assert not reader.is_alive(), f"the stream of {reader.task_id} did not end"
        assert reader.error is None, f"stream of {reader.task_id}: {reader.error!r}"
        names = [name for name, _ in reader.events]
        assert names[0] == "snapshot" and names[-1] == "done", names
        assert reader.events[0][1]["state"] == "PENDING", "the stream was open before the batch ran"
        finals = {data["image_id"]: data for name, data in reader.events if name == "image"}
        assert len(finals) == 1 + IN_ARTICLE, "every image's changes reached the other web process live"
        assert all(item["status"] == "completed" and item["progress"] == 100 for item in finals.values())
        done = reader.events[-1][1]
        assert done["state"] == "SUCCESS" and done["completed"] == 1 + IN_ARTICLE and done["failed"] == 0


def _batches_ran_on_both_workers(cluster: Cluster, readers: list[StreamReader]) -> None:
    with Redis.from_url(cluster.redis_url) as control:
        ran_by = {reader.task_id: Job.fetch(reader.task_id, connection=control).worker_name for reader in readers}
    expected = {f"igny8-{socket.gethostname()}-{worker.proc.pid}" for worker in cluster.workers}
    assert set(ran_by.values()) == expected, f"batches ran on {ran_by}; expected both of {expected}"


def _provider_limit_held_for_both_workers_together(recorder: InFlightRecorder, elapsed: float) -> None:
    total = BATCHES * (1 + IN_ARTICLE)
    peak, holds = recorder.replay()
    assert peak == CONCURRENT_LIMIT, f"provider calls in flight peaked at {peak}, limit {CONCURRENT_LIMIT}"
    assert len(holds) == total, f"{len(holds)} provider calls for {total} images"
    assert min(holds) >= LATENCY * 0.9, "a slot is held for the whole provider call"
    # Independent of the limiter's bookkeeping: 18 calls of 0.4 s, two at a time, cannot end sooner.
    assert elapsed >= total * LATENCY / CONCURRENT_LIMIT


def _each_image_generated_once_by_one_worker(app: Flask, cluster: Cluster, who: dict, content_ids: list[int]
                                              ) -> None:
    with app.app_context():
        rows = db.session.scalars(select(Image).where(Image.account_id == who["account_id"])).all()
        tasks = db.session.scalars(select(GenerationTask)).all()
        assert Counter(row.content_id for row in rows) == dict.fromkeys(content_ids, 1 + IN_ARTICLE)
        assert all(row.status == "generated" and row.attempts == 1 and row.image_url for row in rows)
        assert all(task.state == "SUCCESS" and task.completed == 1 + IN_ARTICLE for task in tasks)
        assert len(tasks) == BATCHES
        generated_lines = [line for worker in cluster.workers for line in worker.output().splitlines()
                           if " image_generated " in line]
        assert sorted(int(line.split(" image=")[1].split()[0]) for line in generated_lines) \
            == sorted(row.id for row in rows), "each image generated once, by one worker"
        for row in rows:
            assert (cluster.media_root / row.image_url.removeprefix("/media/")).is_file()


def test_two_webs_and_two_workers_share_batches_limit_and_streams(cluster: Cluster):
    app = create_app({"TESTING": True, "SECRET_KEY": SECRET, "SQLALCHEMY_DATABASE_URI": cluster.database_url,
                      "REDIS_URL": cluster.redis_url, "MEDIA_ROOT": str(cluster.media_root)})
    try:
        who = Accounts(app).create("Scale")
        web_a, web_b = (web.url for web in cluster.webs)
        _settings_saved_on_one_web_are_read_on_the_other(web_a, web_b, who)

        limiter_key = f"igny8:ratelimit:local:{who['account_id']}:inflight"
        with InFlightRecorder(cluster.redis_url, limiter_key) as recorder:
            content_ids, readers = _queue_batches_alternately_and_follow_each_on_the_other_web(web_a, web_b, who)
            elapsed = _resume_the_workers_and_read_every_stream_to_its_end(cluster, readers)

        _every_stream_saw_its_batch_live_to_done(readers)
        _batches_ran_on_both_workers(cluster, readers)
        _provider_limit_held_for_both_workers_together(recorder, elapsed)
        _each_image_generated_once_by_one_worker(app, cluster, who, content_ids)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        close_redis(app)
