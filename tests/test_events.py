"""The JSON event stream, read by a real SSE client library over a real HTTP server, with a
real worker generating the images."""

from __future__ import annotations

import json

import requests

from tests.support.streams import open_stream


def test_stream_sends_snapshot_then_changes_then_done(writer, start_worker, live_server):
    writer.configure(provider="local", model="placeholder", max_in_article_images=4)
    start_worker(LOCAL_PROVIDER_LATENCY="0.3")
    content = writer.article()
    task_id = writer.generate(content)
    response, stream = open_stream(live_server, writer.who, task_id)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache" and response.headers["X-Accel-Buffering"] == "no"
    events = list(stream.events())
    assert events[0].event == "snapshot" and events[-1].event == "done"
    assert all(e.id for e in events), "every event has an id"
    snapshot = json.loads(events[0].data)
    assert snapshot["task_id"] == task_id and snapshot["meta"]["total_images"] == 5
    finals = {}
    for e in events:
        if e.event == "image":
            item = json.loads(e.data)
            finals[item["image_id"]] = item
    done = json.loads(events[-1].data)
    assert done["state"] == "SUCCESS" and done["completed"] == 5
    assert all(item["status"] == "completed" and item["progress"] == 100 and item["image_url"]
               for item in finals.values()) and len(finals) == 5
    progress_seen = {}
    for e in events:
        if e.event == "image":
            item = json.loads(e.data)
            assert item["progress"] >= progress_seen.get(item["image_id"], 0), "bars never move backwards"
            progress_seen[item["image_id"]] = item["progress"]


def test_reconnect_with_last_event_id_misses_nothing(writer, start_worker, live_server):
    writer.configure(provider="local", model="placeholder", max_in_article_images=4)
    start_worker(LOCAL_PROVIDER_LATENCY="0.3")
    content = writer.article()
    task_id = writer.generate(content)
    full_response, full_stream = open_stream(live_server, writer.who, task_id)
    response, stream = open_stream(live_server, writer.who, task_id)
    first = []
    for e in stream.events():
        first.append(e)
        if len(first) == 6:
            break
    response.close()  # drop the connection mid-stream
    _, resumed = open_stream(live_server, writer.who, task_id, last_event_id=first[-1].id)
    rest = list(resumed.events())
    assert rest[0].event != "snapshot", "a resumable id replays what was missed instead"
    ids = [e.id for e in first + rest if e.event != "snapshot"]
    reference = [e.id for e in full_stream.events() if e.event != "snapshot"]
    assert ids[-1] == reference[-1] and set(reference) <= set(ids) | {first[0].id}
    assert len(ids) == len(set(ids)), "nothing delivered twice"
    full_response.close()


def test_finished_task_streams_snapshot_and_done_at_once(writer, worker, live_server):
    writer.configure(provider="local", model="placeholder", max_in_article_images=1)
    content = writer.article(in_article=1)
    task_id = writer.generate(content)
    list(open_stream(live_server, writer.who, task_id)[1].events())
    events = list(open_stream(live_server, writer.who, task_id)[1].events())
    assert [e.event for e in events] == ["snapshot", "done"]


def test_a_stream_opened_on_a_dead_workers_task_ends_it_at_once(writer, redis, live_server):
    """The opening reads the RQ job's status with the snapshot (one Redis round trip): a job that
    RQ marked failed (its work-horse was killed) ends the task FAILURE before the first event, and
    the snapshot already says so; the same task's images are free again."""
    writer.configure(provider="local", model="placeholder", max_in_article_images=1)
    content = writer.article(in_article=1)
    task_id = writer.generate(content)  # no worker: the job waits in the queue
    response, stream = open_stream(live_server, writer.who, task_id)
    with response:
        assert json.loads(next(stream.events()).data)["state"] == "PENDING"
    redis.hset(f"rq:job:{task_id}", "status", "failed")
    events = list(open_stream(live_server, writer.who, task_id)[1].events())
    assert [e.event for e in events] == ["snapshot", "done"]
    snapshot, done = json.loads(events[0].data), json.loads(events[1].data)
    assert snapshot["state"] == "FAILURE" and done["state"] == "FAILURE" and "worker" in done["error"]
    assert {r["status"] for r in writer.images(content)} == {"failed"}


def test_foreign_or_unknown_task_stream_is_404(writer, writer_for, globex, worker, live_server):
    writer.configure(provider="local", model="placeholder")
    content = writer.article(in_article=1)
    task_id = writer.generate(content)
    foreign = requests.get(f"{live_server.url}/api/v1/tasks/{task_id}/events", headers=globex["headers"], timeout=10)
    assert foreign.status_code == 404
    unknown = requests.get(f"{live_server.url}/api/v1/tasks/nope/events", headers=writer.headers, timeout=10)
    assert unknown.status_code == 404
    intruder = writer_for(globex)
    assert intruder.client.get(f"/api/v1/system/settings/task_progress/{task_id}/", headers=intruder.headers) \
        .status_code == 404
    assert intruder.cancel(task_id).status_code == 404


def test_many_open_streams_hold_no_database_connection(app, writer, start_worker, live_server):
    """40 watchers of one running batch (more than the database pool's 15 connections): every one
    gets its snapshot at once and its ``done`` at the end, and the open streams hold no connection."""
    from concurrent.futures import ThreadPoolExecutor

    from igny8.extensions import db

    writer.configure(provider="local", model="placeholder", max_in_article_images=2)
    start_worker(LOCAL_PROVIDER_LATENCY="0.7")
    content = writer.article(in_article=2)
    task_id = writer.generate(content)
    opened = [open_stream(live_server, writer.who, task_id) for _ in range(40)]
    readers = [stream.events() for _, stream in opened]
    assert all(next(events).event == "snapshot" for events in readers)
    with app.app_context():
        assert db.engine.pool.checkedout() <= 2, "open streams do not keep database connections"

    def rest(events) -> list[str]:  # noqa: ANN001
        return [e.event for e in events]

    with ThreadPoolExecutor(max_workers=40) as pool:
        results = list(pool.map(rest, readers))
    assert all(names and names[-1] == "done" for names in results)
    for response, _ in opened:
        response.close()


def test_stream_sends_each_change_once(writer, start_worker, live_server):
    """No image event repeats the previous one's data, no two ``task`` events are the same, no id twice."""
    writer.configure(provider="local", model="placeholder", max_in_article_images=4)
    start_worker(LOCAL_PROVIDER_LATENCY="0.3")
    content = writer.article()
    task_id = writer.generate(content)
    response, stream = open_stream(live_server, writer.who, task_id)
    events = list(stream.events())
    response.close()
    assert events[0].event == "snapshot" and events[-1].event == "done"
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids)), "no event id delivered twice"
    per_image: dict[int, list[str]] = {}
    for e in events:
        if e.event == "image":
            per_image.setdefault(json.loads(e.data)["image_id"], []).append(e.data)
    assert len(per_image) == 5
    for image_id, bodies in per_image.items():
        assert len(bodies) == len(set(bodies)), f"image {image_id}: the same data sent twice"
    tasks = [e.data for e in events if e.event == "task"]
    assert len(tasks) == len(set(tasks)), "no two task events alike"
    assert json.loads(tasks[-1])["state"] == "SUCCESS"
