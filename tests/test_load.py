"""Load: 50 writers at once, each generating a 5-image batch with the ``local`` provider, while
500 streams watch (10 per batch), on one gunicorn (gevent) web process and two ``worker.py``
processes, as ``make run`` serves them.

Every writer double-clicks (two generate requests at the same moment), so the claim is under
load too. Passing means: every image generated exactly once (one ``image_generated`` log line
per image, one file per variant, one attempt), every stream ends with ``done`` and the true
counts, and no response of any kind was a 5xx. The figures are printed and written to
``test-artifacts/load.txt``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import sseclient
from flask import Flask
from sqlalchemy import select

from igny8.extensions import db
from igny8.models import GenerationTask, Image
from tests.support.accounts import Accounts
from tests.support.processes import WebProcess
from tests.support.waiting import wait_for
from tests.support.writer import GENERATE, SETTINGS

pytestmark = pytest.mark.slow

WRITERS = 50
IN_ARTICLE = 4  # plus the featured image: 5 images a batch
STREAMS_PER_BATCH = 10
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


class Statuses:
    """Every HTTP status the load saw (thread-safe), to count the 5xx."""

    def __init__(self) -> None:
        self.lock, self.counts = threading.Lock(), Counter()

    def record(self, response: requests.Response) -> requests.Response:
        with self.lock:
            self.counts[response.status_code] += 1
        return response

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.counts.items() if status >= 500)


class Watcher(threading.Thread):
    """One SSE client reading a task's JSON stream to its end."""

    def __init__(self, url: str, headers: dict[str, str], statuses: Statuses) -> None:
        super().__init__(daemon=True)
        self.url, self.headers, self.statuses = url, headers, statuses
        self.events: list[tuple[str, dict]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            response = self.statuses.record(requests.get(self.url, headers=self.headers, stream=True, timeout=60))
            with response:
                assert response.status_code == 200, response.text
                for event in sseclient.SSEClient(response).events():
                    self.events.append((event.event, json.loads(event.data)))
        except BaseException as exc:  # reported by the test thread
            self.error = exc


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Load:
    """The run's shared state: the web process, one pooled HTTP session, every status seen, the
    writers (accounts), each writer's two click answers (seconds, response) and the watchers."""

    web: WebProcess
    writers: list[dict]
    statuses: Statuses = field(default_factory=Statuses)
    session: requests.Session = field(default_factory=requests.Session)
    answers: dict[int, list[tuple[float, requests.Response]]] = field(default_factory=dict)
    watchers: list[Watcher] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=2 * WRITERS))
        self.answers = {w["account_id"]: [] for w in self.writers}


def _every_writer_sets_up_and_writes_an_article(load: Load) -> None:
    settings = {"provider": "local", "model": "placeholder", "max_in_article_images": IN_ARTICLE}

    def prepare(writer: dict) -> None:
        put = load.statuses.record(load.session.put(load.web.url + SETTINGS, json=settings,
                                                    headers=writer["headers"], timeout=30))
        assert put.status_code == 200, put.text
        body = {"title": f"Article of {writer['email']}", "featured_prompt": "A lighthouse at dusk",
                "in_article_prompts": [f"Step {n}" for n in range(1, IN_ARTICLE + 1)]}
        created = load.statuses.record(load.session.post(load.web.url + "/api/v1/writer/content/", json=body,
                                                         headers=writer["headers"], timeout=30))
        assert created.status_code == 201, created.text
        writer["content_id"] = created.json()["id"]

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(prepare, load.writers))


def _every_writer_reads_twice_at_the_same_moment(load: Load) -> list[float]:
    """The baseline of the click figures, in the same run and the same shape: 100 requests that
    each read the writer's article list (auth and one query) released together; their seconds."""
    start = threading.Barrier(2 * WRITERS)

    def read(writer: dict) -> float:
        start.wait(30)
        sent = time.monotonic()
        response = load.statuses.record(load.session.get(load.web.url + "/api/v1/writer/content/",
                                                         headers=writer["headers"], timeout=60))
        assert response.status_code == 200, response.text
        return time.monotonic() - sent

    with ThreadPoolExecutor(max_workers=2 * WRITERS) as pool:
        return list(pool.map(read, [w for w in load.writers for _ in range(2)]))


def _every_writer_double_clicks_at_the_same_moment(load: Load) -> float:
    """All writers at once, each with a double click: 100 generate requests released together; each
    new batch gets STREAMS_PER_BATCH watchers. The seconds until every watcher ended (or gave up)."""
    start = threading.Barrier(2 * WRITERS)
    watchers_lock = threading.Lock()

    def click(writer: dict) -> None:
        start.wait(30)
        sent = time.monotonic()
        response = load.statuses.record(load.session.post(load.web.url + GENERATE,
                                                          json={"content_id": writer["content_id"]},
                                                          headers=writer["headers"], timeout=60))
        load.answers[writer["account_id"]].append((time.monotonic() - sent, response))
        if response.status_code == 202 and not response.json()["existing"]:
            url = f"{load.web.url}/api/v1/tasks/{response.json()['task_id']}/events"
            started = [Watcher(url, writer["headers"], load.statuses) for _ in range(STREAMS_PER_BATCH)]
            with watchers_lock:
                load.watchers.extend(started)
            for watcher in started:
                watcher.start()

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=2 * WRITERS) as pool:
        list(pool.map(click, [w for w in load.writers for _ in range(2)]))
    for watcher in load.watchers:
        watcher.join(max(1.0, 180 - (time.monotonic() - began)))
    return time.monotonic() - began


def _one_click_of_each_writer_queued_the_batch(load: Load) -> int:
    """Each writer: one click queued the batch; the other was told about that task (202, existing),
    or, when it was served after the batch had already finished, that nothing is left (409).
    Returns how many second clicks came that late."""
    late_clicks = 0
    for writer in load.writers:
        pair = sorted((response for _, response in load.answers[writer["account_id"]]), key=lambda r: r.status_code)
        new = [r for r in pair if r.status_code == 202 and not r.json()["existing"]]
        assert len(new) == 1, [r.text for r in pair]
        other = pair[1] if pair[0] is new[0] else pair[0]
        if other.status_code == 409:
            late_clicks += 1
            assert "Nothing to generate" in other.json()["error"]
        else:
            assert other.status_code == 202 and other.json()["task_id"] == new[0].json()["task_id"], other.text
    assert len(load.watchers) == WRITERS * STREAMS_PER_BATCH
    return late_clicks


def _every_stream_ended_with_done_and_the_true_counts(load: Load, wall: float) -> None:
    for watcher in load.watchers:
        assert not watcher.is_alive(), f"{watcher.url} did not end in {wall:.0f} s"
        assert watcher.error is None, f"{watcher.url}: {watcher.error!r}"
        names = [name for name, _ in watcher.events]
        assert names[0] == "snapshot" and names[-1] == "done", names
        done = watcher.events[-1][1]
        assert (done["state"], done["completed"], done["failed"]) == ("SUCCESS", 1 + IN_ARTICLE, 0), done
    assert load.statuses.server_errors == 0, load.statuses.counts


@dataclass
class Outcome:
    images: list[Image]
    durations: list[float]  # each task, queued -> finished
    duplicates: int
    files: list[Path]


def _every_image_generated_exactly_once(app: Flask, worker_env: dict[str, str], tmp_path: Path) -> Outcome:
    """One row per image, generated at the first attempt; one ``image_generated`` log line per
    image across both workers; its file on disk."""
    with app.app_context():
        images = db.session.scalars(select(Image)).all()
        tasks = db.session.scalars(select(GenerationTask)).all()
        assert len(images) == WRITERS * (1 + IN_ARTICLE)
        assert all(image.status == "generated" and image.attempts == 1 for image in images)
        assert len(tasks) == WRITERS and all(task.state == "SUCCESS" for task in tasks)
        durations = [(task.finished_at - task.created_at).total_seconds() for task in tasks]
    logged = [int(line.split(" image=")[1].split()[0])
              for worker_log in tmp_path.glob("worker-*.log")
              for line in worker_log.read_text(errors="replace").splitlines() if " image_generated " in line]
    duplicates = sum(n - 1 for n in Counter(logged).values())
    assert duplicates == 0 and sorted(logged) == sorted(image.id for image in images)
    media = Path(worker_env["MEDIA_ROOT"])
    files = [p for p in media.rglob("*") if p.is_file()]
    for image in images:
        assert (media / image.image_url.removeprefix("/media/")).is_file()
    return Outcome(images, durations, duplicates, files)


def _write_the_figures(load: Load, outcome: Outcome, late_clicks: int, wall: float, reads: list[float]) -> None:
    """Printed and written to ``test-artifacts/load.txt``."""
    images, durations, statuses = outcome.images, outcome.durations, load.statuses
    clicks = [seconds for pairs in load.answers.values() for seconds, _ in pairs]
    figures = (
        f"load: {WRITERS} writers x {1 + IN_ARTICLE} images (double-clicked), {len(load.watchers)} streams, "
        f"1 gunicorn gevent web + 2 workers, local provider\n"
        f"  images generated {len(images)}, failed 0, lost 0, duplicates {outcome.duplicates}, "
        f"files {len(outcome.files)}\n"
        f"  second clicks answered 'already running' {WRITERS - late_clicks}, 'already done' {late_clicks}\n"
        f"  requests {sum(statuses.counts.values())}, 5xx {statuses.server_errors}, "
        f"statuses {dict(sorted(statuses.counts.items()))}\n"
        f"  generate request p50 {pct(clicks, 0.5) * 1000:.0f} ms, p99 {pct(clicks, 0.99) * 1000:.0f} ms "
        f"(baseline, the same burst of article-list reads before it: p50 {pct(reads, 0.5) * 1000:.0f} ms, "
        f"p99 {pct(reads, 0.99) * 1000:.0f} ms); "
        f"batch queued->done p50 {pct(durations, 0.5):.1f} s, max {max(durations):.1f} s; "
        f"all done in {wall:.1f} s ({len(images) / wall:.1f} images/s)\n"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "load.txt").write_text(figures)
    print("\n" + figures)


def test_50_writers_and_500_streams(app: Flask, accounts: Accounts, worker_env: dict[str, str], start_worker,
                                    tmp_path: Path):  # noqa: ANN001
    web = WebProcess(worker_env, tmp_path / "web.log")
    try:
        wait_for(web.health, timeout=30, message="gunicorn to answer")
        for _ in range(2):
            start_worker()
        load = Load(web, [accounts.create(f"Writer {n}") for n in range(WRITERS)])  # admins: each sets up its own
        _every_writer_sets_up_and_writes_an_article(load)
        reads = _every_writer_reads_twice_at_the_same_moment(load)
        wall = _every_writer_double_clicks_at_the_same_moment(load)

        late_clicks = _one_click_of_each_writer_queued_the_batch(load)
        _every_stream_ended_with_done_and_the_true_counts(load, wall)
        outcome = _every_image_generated_exactly_once(app, worker_env, tmp_path)
        _write_the_figures(load, outcome, late_clicks, wall, reads)
    finally:
        web.stop()
