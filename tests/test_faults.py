"""Faults injected into real parts: Redis restarted mid-batch, the worker killed between images,
media that cannot be written, and the same images asked for by several clients at once."""

from __future__ import annotations

import os
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import sseclient

from tests.support.processes import WorkerProcess
from tests.support.waiting import wait_for
from tests.support.writer import GENERATE, Writer


def _follow(live_server, who, task_id: str, events: list, stop: threading.Event) -> None:  # noqa: ANN001
    """An SSE client that reconnects (with Last-Event-ID) whenever its stream ends early, as
    EventSource does, until it has seen ``done``."""
    last_id = None
    while not stop.is_set():
        headers = dict(who["headers"], Accept="text/event-stream")
        if last_id:
            headers["Last-Event-ID"] = last_id
        try:
            response = requests.get(f"{live_server.url}/api/v1/tasks/{task_id}/events", headers=headers,
                                    stream=True, timeout=30)
            for event in sseclient.SSEClient(response).events():
                events.append(event)
                last_id = event.id or last_id
                if event.event == "done":
                    return
        except requests.RequestException:
            pass
        stop.wait(0.5)


def _restart_redis(redis_server, app) -> None:  # noqa: ANN001
    """A crash: every key is gone (no persistence), the job included. Tasks whose worker heartbeat
    is older than 5 s are then reconciled as dead."""
    redis_server.kill()
    redis_server.start()
    app.config["HEARTBEAT_STALE_SECONDS"] = 5


def _follow_in_a_thread(live_server, writer: Writer,  # noqa: ANN001
                        task_id: str) -> tuple[threading.Thread, threading.Event, list]:
    """``_follow`` in a daemon thread: (the thread, its stop event, the events it collects)."""
    events: list = []
    stop = threading.Event()
    watcher = threading.Thread(target=_follow, args=(live_server, writer.who, task_id, events, stop), daemon=True)
    watcher.start()
    return watcher, stop, events


def _nothing_stuck_and_progress_tells_the_databases_truth(writer: Writer, app, content: dict,  # noqa: ANN001
                                                          result: dict) -> list[int]:
    """No row queued or processing, every generated row's file on disk, progress counts what the
    rows say; the ids of the images still to make."""
    rows = writer.images(content)
    assert not [r for r in rows if r["status"] in ("queued", "processing")], "nothing stuck"
    generated = [r for r in rows if r["status"] == "generated"]
    media = Path(app.config["MEDIA_ROOT"])
    assert all((media / r["image_url"].removeprefix("/media/")).is_file() for r in generated)
    assert result["meta"]["completed"] == len(generated), "the UI shows the database's truth"
    return [r["id"] for r in rows if r["status"] != "generated"]


def _a_new_article_is_generated_after_the_restart(writer: Writer) -> None:
    other = writer.article(in_article=1, title="After the restart")
    task = writer.generate(other)
    assert writer.finished(task, timeout=60)["meta"]["completed"] == 2


def test_redis_restart_mid_batch_recovers_worker_web_and_streams(writer, start_worker, live_server,
                                                                  redis_server, app):
    writer.configure(provider="local", model="placeholder", max_in_article_images=4)
    worker = start_worker(LOCAL_PROVIDER_LATENCY="0.8")
    content = writer.article()
    task_id = writer.generate(content)
    watcher, stop, events = _follow_in_a_thread(live_server, writer, task_id)
    wait_for(lambda: writer.progress(task_id)["meta"]["completed"] >= 1, message="one image done")
    _restart_redis(redis_server, app)
    result = writer.finished(task_id, timeout=60)
    watcher.join(60)
    stop.set()
    assert not watcher.is_alive() and events[-1].event == "done", "the open stream recovered and ended"
    missing = _nothing_stuck_and_progress_tells_the_databases_truth(writer, app, content, result)
    # the worker survived and serves new work
    assert worker.proc.poll() is None
    if missing:
        again = writer.generate(ids=missing)
        assert writer.finished(again, timeout=60)["meta"]["completed"] == len(missing)
    _a_new_article_is_generated_after_the_restart(writer)
    assert {r["status"] for r in writer.images(content)} == {"generated"}
    assert writer.client.get("/healthz").status_code == 200


@pytest.mark.parametrize("when", ["mid-image", "between-images"])
def test_worker_killed_then_requeued_pays_only_for_what_is_missing(writer, fake_openai, start_worker, app,
                                                                   when):
    writer.save_api_key("openai", "sk-test-0123456789")
    writer.configure(provider="openai", max_in_article_images=4)
    fake_openai.latency = 1.0
    # between images: one call a minute, so the second image waits for its turn with no call in flight
    limit = {"PROVIDER_LIMIT_OPENAI": "1/1"} if when == "between-images" else {}
    first = start_worker(OPENAI_BASE_URL=fake_openai.base_url, **limit)
    content = writer.article()
    task_id = writer.generate(content)
    wait_for(lambda: writer.progress(task_id)["meta"]["completed"] >= 1, message="one image done")
    if when == "mid-image":
        wait_for(lambda: fake_openai.call_count >= 2, message="the second call in flight")
    first.kill()
    time.sleep(fake_openai.latency + 0.3)  # a call in flight at the kill is answered (and billed) all the same
    calls_at_kill = fake_openai.call_count
    app.config["HEARTBEAT_STALE_SECONDS"] = 3
    result = writer.finished(task_id, timeout=30)
    assert result["state"] == "FAILURE" and result["result"]["error"]
    rows = writer.images(content)
    assert not [r for r in rows if r["status"] in ("queued", "processing")]
    done_before = [r for r in rows if r["status"] == "generated"]
    missing = [r["id"] for r in rows if r["status"] != "generated"]
    media = Path(app.config["MEDIA_ROOT"])
    assert all((media / r["image_url"].removeprefix("/media/")).is_file() for r in done_before)
    fake_openai.latency = 0.0
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    retry = writer.click_generate(ids=missing).json  # "Retry failed"
    assert sorted(item["image_id"] for item in retry["queue"]) == sorted(missing)
    assert writer.finished(retry["task_id"])["meta"]["completed"] == len(missing)
    assert fake_openai.call_count == calls_at_kill + len(missing), "no image generated twice"
    assert {r["status"] for r in writer.images(content)} == {"generated"}


def test_unwritable_media_fails_the_image_clearly_and_no_row_claims_a_file(writer, start_worker, app,
                                                                          tmp_path):
    if os.geteuid() == 0:
        # root ignores permissions: a file where the media folder should be blocks writes for everyone
        media = tmp_path / "blocked-media"
        media.write_text("not a folder")
    else:
        media = tmp_path / "readonly-media"
        media.mkdir()
        media.chmod(stat.S_IRUSR | stat.S_IXUSR)
    writer.configure(provider="local", model="placeholder", max_in_article_images=1)
    start_worker(MEDIA_ROOT=str(media))
    content = writer.article(in_article=1)
    task_id = writer.generate(content)
    result = writer.finished(task_id)
    assert result["meta"]["failed"] == 2 and result["meta"]["completed"] == 0
    for row in writer.images(content):
        assert row["status"] == "failed" and "Could not save the image" in row["error"]
        assert not row["image_url"], "no row claims a file that does not exist"


def test_two_tabs_and_two_api_clients_at_once_generate_each_image_exactly_once(writer, fake_openai,
                                                                              start_worker, live_server):
    writer.save_api_key("openai", "sk-test-0123456789")
    writer.configure(provider="openai", max_in_article_images=4)
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    content = writer.article()
    ids = [image["id"] for image in content["images"]]
    bodies = [{"content_id": content["id"]}, {"ids": ids}, {"content_id": content["id"]}, {"ids": ids[:2]}] * 3
    barrier = threading.Barrier(len(bodies))

    def ask(body: dict) -> requests.Response:
        barrier.wait()
        return requests.post(f"{live_server.url}{GENERATE}", json=body, headers=writer.headers, timeout=30)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        answers = list(pool.map(ask, bodies))
    assert all(a.status_code in (202, 409) for a in answers), [a.status_code for a in answers]
    created = [a.json() for a in answers if a.status_code == 202 and not a.json()["existing"]]
    claimed = [item["image_id"] for task in created for item in task["queue"]]
    assert sorted(claimed) == sorted(ids), "every image claimed by exactly one new task"
    tasks = {a.json()["task_id"] for a in answers if a.status_code == 202}
    assert tasks == {task["task_id"] for task in created}, "the others were answered with the task holding theirs"
    for task_id in tasks:
        writer.finished(task_id)
    rows = writer.images(content)
    assert {r["status"] for r in rows} == {"generated"} and all(r["attempts"] == 1 for r in rows)
    assert fake_openai.call_count == len(ids), "each image generated exactly once"


def _the_worker_registers_again_and_stays_registered(app) -> None:  # noqa: ANN001
    from rq import Worker

    from igny8.redis_client import get_rq_redis

    def registered() -> bool:
        with app.app_context():
            try:
                return Worker.count(connection=get_rq_redis()) >= 1
            except Exception:  # noqa: BLE001 - Redis may still be coming up
                return False

    wait_for(registered, timeout=40, message="the worker to register again")
    time.sleep(12)  # one more idle round (BLPOP timeout + heartbeat), where the refusal used to happen
    assert registered()


def _its_log_shows_no_refusal_traceback_or_restart(worker: WorkerProcess) -> None:
    output = worker.output()
    assert "There exists an active worker" not in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]  # RQ's scheduler process rides out the outage too
    assert "worker_restart" not in output


def _the_sweep_is_scheduled_again(app) -> None:  # noqa: ANN001
    """Redis lost the scheduled sweep with the registration: it is scheduled again."""
    from igny8.redis_client import get_rq_redis
    from igny8.tasks.jobs import SWEEP_LOCK

    with app.app_context():
        assert get_rq_redis().exists(SWEEP_LOCK)


def test_worker_registers_again_after_a_redis_restart_without_a_traceback(writer, start_worker,
                                                                          redis_server, app):
    """A Redis restart during a batch: afterwards RQ wrote a partial hash for the worker (its state)
    and then refused to register it ("There exists an active worker named …", a traceback, a
    restarted work loop). The worker now registers under a fresh name, with one log line."""
    writer.configure(provider="local", model="placeholder", max_in_article_images=2)
    worker = start_worker(LOCAL_PROVIDER_LATENCY="0.8")
    content = writer.article(in_article=2)
    task_id = writer.generate(content)
    wait_for(lambda: "provider_call" in worker.output(), timeout=20, message="the batch to start")
    _restart_redis(redis_server, app)
    writer.finished(task_id, timeout=60)
    _the_worker_registers_again_and_stays_registered(app)
    _its_log_shows_no_refusal_traceback_or_restart(worker)
    _the_sweep_is_scheduled_again(app)
    _a_new_article_is_generated_after_the_restart(writer)
    assert worker.proc.poll() is None
