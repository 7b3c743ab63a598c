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

from tests.support.waiting import wait_for
from tests.support.writer import GENERATE, article, configure, finished, images, progress


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


def test_redis_restart_mid_batch_recovers_worker_web_and_streams(client, acme, start_worker, live_server,
                                                                  redis_server, app):
    configure(client, acme, provider="local", model="placeholder", max_in_article_images=4)
    worker = start_worker(LOCAL_PROVIDER_LATENCY="0.8")
    content = article(client, acme)
    task_id = client.post(GENERATE, json={"content_id": content["id"]}, headers=acme["headers"]).json["task_id"]
    events: list = []
    stop = threading.Event()
    watcher = threading.Thread(target=_follow, args=(live_server, acme, task_id, events, stop), daemon=True)
    watcher.start()
    wait_for(lambda: progress(client, acme, task_id)["meta"]["completed"] >= 1, message="one image done")
    redis_server.kill()  # a crash: every key is gone (no persistence), the job included
    redis_server.start()
    app.config["HEARTBEAT_STALE_SECONDS"] = 5
    result = finished(client, acme, task_id, timeout=60)
    watcher.join(60)
    stop.set()
    assert not watcher.is_alive() and events[-1].event == "done", "the open stream recovered and ended"
    rows = images(client, acme, content["id"])
    assert not [r for r in rows if r["status"] in ("queued", "processing")], "nothing stuck"
    generated = [r for r in rows if r["status"] == "generated"]
    media = Path(app.config["MEDIA_ROOT"])
    assert all((media / r["image_url"].removeprefix("/media/")).is_file() for r in generated)
    assert result["meta"]["completed"] == len(generated), "the UI shows the database's truth"
    # the worker survived and serves new work
    assert worker.proc.poll() is None
    missing = [r["id"] for r in rows if r["status"] != "generated"]
    if missing:
        again = client.post(GENERATE, json={"ids": missing}, headers=acme["headers"]).json["task_id"]
        assert finished(client, acme, again, timeout=60)["meta"]["completed"] == len(missing)
    other = article(client, acme, in_article=1, title="After the restart")
    task = client.post(GENERATE, json={"content_id": other["id"]}, headers=acme["headers"]).json["task_id"]
    assert finished(client, acme, task, timeout=60)["meta"]["completed"] == 2
    assert {r["status"] for r in images(client, acme, content["id"])} == {"generated"}
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("when", ["mid-image", "between-images"])
def test_worker_killed_then_requeued_pays_only_for_what_is_missing(client, acme, fake_openai, start_worker, app,
                                                                   when):
    client.put("/api/v1/system/integrations/openai/", json={"api_key": "sk-test-0123456789"}, headers=acme["headers"])
    configure(client, acme, provider="openai", max_in_article_images=4)
    fake_openai.latency = 1.0
    # between images: one call a minute, so the second image waits for its turn with no call in flight
    limit = {"PROVIDER_LIMIT_OPENAI": "1/1"} if when == "between-images" else {}
    first = start_worker(OPENAI_BASE_URL=fake_openai.base_url, **limit)
    content = article(client, acme)
    task_id = client.post(GENERATE, json={"content_id": content["id"]}, headers=acme["headers"]).json["task_id"]
    wait_for(lambda: progress(client, acme, task_id)["meta"]["completed"] >= 1, message="one image done")
    if when == "mid-image":
        wait_for(lambda: fake_openai.call_count >= 2, message="the second call in flight")
    first.kill()
    time.sleep(fake_openai.latency + 0.3)  # a call in flight at the kill is answered (and billed) all the same
    calls_at_kill = fake_openai.call_count
    app.config["HEARTBEAT_STALE_SECONDS"] = 3
    result = finished(client, acme, task_id, timeout=30)
    assert result["state"] == "FAILURE" and result["result"]["error"]
    rows = images(client, acme, content["id"])
    assert not [r for r in rows if r["status"] in ("queued", "processing")]
    done_before = [r for r in rows if r["status"] == "generated"]
    missing = [r["id"] for r in rows if r["status"] != "generated"]
    media = Path(app.config["MEDIA_ROOT"])
    assert all((media / r["image_url"].removeprefix("/media/")).is_file() for r in done_before)
    fake_openai.latency = 0.0
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    retry = client.post(GENERATE, json={"ids": missing}, headers=acme["headers"]).json  # "Retry failed"
    assert sorted(item["image_id"] for item in retry["queue"]) == sorted(missing)
    assert finished(client, acme, retry["task_id"])["meta"]["completed"] == len(missing)
    assert fake_openai.call_count == calls_at_kill + len(missing), "no image generated twice"
    assert {r["status"] for r in images(client, acme, content["id"])} == {"generated"}


def test_unwritable_media_fails_the_image_clearly_and_no_row_claims_a_file(client, acme, start_worker, app,
                                                                          tmp_path):
    if os.geteuid() == 0:
        # root ignores permissions: a file where the media folder should be blocks writes for everyone
        media = tmp_path / "blocked-media"
        media.write_text("not a folder")
    else:
        media = tmp_path / "readonly-media"
        media.mkdir()
        media.chmod(stat.S_IRUSR | stat.S_IXUSR)
    configure(client, acme, provider="local", model="placeholder", max_in_article_images=1)
    start_worker(MEDIA_ROOT=str(media))
    content = article(client, acme, in_article=1)
    task_id = client.post(GENERATE, json={"content_id": content["id"]}, headers=acme["headers"]).json["task_id"]
    result = finished(client, acme, task_id)
    assert result["meta"]["failed"] == 2 and result["meta"]["completed"] == 0
    for row in images(client, acme, content["id"]):
        assert row["status"] == "failed" and "Could not save the image" in row["error"]
        assert not row["image_url"], "no row claims a file that does not exist"


def test_two_tabs_and_two_api_clients_at_once_generate_each_image_exactly_once(client, acme, auth, fake_openai,
                                                                              start_worker, live_server):
    client.put("/api/v1/system/integrations/openai/", json={"api_key": "sk-test-0123456789"}, headers=acme["headers"])
    configure(client, acme, provider="openai", max_in_article_images=4)
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    content = article(client, acme)
    ids = [image["id"] for image in content["images"]]
    bodies = [{"content_id": content["id"]}, {"ids": ids}, {"content_id": content["id"]}, {"ids": ids[:2]}] * 3
    barrier = threading.Barrier(len(bodies))

    def ask(body: dict) -> requests.Response:
        barrier.wait()
        return requests.post(f"{live_server.url}{GENERATE}", json=body, headers=acme["headers"], timeout=30)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        answers = list(pool.map(ask, bodies))
    assert all(a.status_code in (202, 409) for a in answers), [a.status_code for a in answers]
    created = [a.json() for a in answers if a.status_code == 202 and not a.json()["existing"]]
    claimed = [item["image_id"] for task in created for item in task["queue"]]
    assert sorted(claimed) == sorted(ids), "every image claimed by exactly one new task"
    tasks = {a.json()["task_id"] for a in answers if a.status_code == 202}
    assert tasks == {task["task_id"] for task in created}, "the others were answered with the task holding theirs"
    for task_id in tasks:
        finished(client, acme, task_id)
    rows = images(client, acme, content["id"])
    assert {r["status"] for r in rows} == {"generated"} and all(r["attempts"] == 1 for r in rows)
    assert fake_openai.call_count == len(ids), "each image generated exactly once"


def test_worker_registers_again_after_a_redis_restart_without_a_traceback(client, acme, start_worker,
                                                                          redis_server, app):
    """A Redis restart during a batch: afterwards RQ wrote a partial hash for the worker (its state)
    and then refused to register it ("There exists an active worker named …", a traceback, a
    restarted work loop). The worker now registers under a fresh name, with one log line."""
    from rq import Worker

    from igny8.redis_client import get_rq_redis
    from igny8.tasks.jobs import SWEEP_LOCK

    configure(client, acme, provider="local", model="placeholder", max_in_article_images=2)
    worker = start_worker(LOCAL_PROVIDER_LATENCY="0.8")
    content = article(client, acme, in_article=2)
    task_id = client.post(GENERATE, json={"content_id": content["id"]}, headers=acme["headers"]).json["task_id"]
    wait_for(lambda: "provider_call" in worker.output(), timeout=20, message="the batch to start")
    redis_server.kill()
    redis_server.start()
    app.config["HEARTBEAT_STALE_SECONDS"] = 5
    finished(client, acme, task_id, timeout=60)

    def registered() -> bool:
        with app.app_context():
            try:
                return Worker.count(connection=get_rq_redis()) >= 1
            except Exception:  # noqa: BLE001 - Redis may still be coming up
                return False

    wait_for(registered, timeout=40, message="the worker to register again")
    time.sleep(12)  # one more idle round (BLPOP timeout + heartbeat), where the refusal used to happen
    assert registered()
    output = worker.output()
    assert "There exists an active worker" not in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]  # RQ's scheduler process rides out the outage too
    assert "worker_restart" not in output
    with app.app_context():  # Redis lost the scheduled sweep with the registration: it is scheduled again
        assert get_rq_redis().exists(SWEEP_LOCK)
    other = article(client, acme, in_article=1, title="After the restart")
    task = client.post(GENERATE, json={"content_id": other["id"]}, headers=acme["headers"]).json["task_id"]
    assert finished(client, acme, task, timeout=60)["meta"]["completed"] == 2
    assert worker.proc.poll() is None
