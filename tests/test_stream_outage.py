"""Open streams ride out a Redis outage: one connection, kept open with keepalives, reads on from
its last event when Redis answers again (what Redis still holds arrives exactly once), takes a
fresh snapshot when a restart lost the keys, and goes on to ``done``; only an outage longer than
STREAM_OUTAGE_SECONDS ends it, and the client's reconnect then gets a snapshot."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests
from redis import Redis

from igny8.progress.keys import events_key
from tests.support.accounts import login_session
from tests.support.waiting import wait_for
from tests.support.writer import Writer

LOST_COMMENT = ": progress store unavailable, reconnect"


@dataclass
class Sse:
    """What one HTTP response carried: its events (id, name, data) and its comment lines."""

    events: list[tuple[str, str, str]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended: bool = False

    def names(self) -> list[str]:
        return [name for _, name, _ in self.events]


def read_stream(response: requests.Response, into: Sse) -> None:
    """Parse SSE lines until the server ends the response (comments kept, unlike sseclient)."""
    event_id, name, data = "", "", []
    for line in response.iter_lines(chunk_size=1, decode_unicode=True):  # ends when the server ends it
        if line.startswith(":"):
            into.comments.append(line)
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif not line and name:
            into.events.append((event_id, name, "\n".join(data)))
            event_id, name, data = "", "", []
    into.ended = True


def open_stream(live_server, who, task_id: str) -> tuple[requests.Response, Sse, threading.Thread]:  # noqa: ANN001
    response = requests.get(f"{live_server.url}/api/v1/tasks/{task_id}/events", stream=True, timeout=60,
                            headers=dict(who["headers"], Accept="text/event-stream"))
    assert response.status_code == 200
    seen = Sse()
    reader = threading.Thread(target=read_stream, args=(response, seen), daemon=True)
    reader.start()
    return response, seen, reader


class HubLog(logging.Handler):
    """The stream hub's log lines (the igny8 loggers do not propagate to pytest's caplog)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def hub_log():  # noqa: ANN201
    handler, logger = HubLog(), logging.getLogger("igny8.streaming.hub")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def _batch(writer: Writer, start_worker, latency: str, in_article: int = 4) -> tuple[dict, str]:  # noqa: ANN001
    """A local batch queued with a worker taking ``latency`` seconds an image: (the article, the task id)."""
    writer.configure(provider="local", model="placeholder", max_in_article_images=in_article)
    start_worker(LOCAL_PROVIDER_LATENCY=latency)
    content = writer.article(in_article=in_article)
    return content, writer.generate(content)


def test_stream_reads_on_exactly_once_when_its_redis_connection_drops(writer, start_worker, live_server,
                                                                     redis, hub_log):
    """Redis keeps its data, the hub's connection is cut again and again mid-batch: the one stream
    delivers every event Redis holds after its snapshot, each once, in order, then ``done``."""
    content, task_id = _batch(writer, start_worker, latency="0.4")
    response, seen, reader = open_stream(live_server, writer.who, task_id)
    wait_for(lambda: "snapshot" in seen.names(), message="the snapshot")
    cuts, deadline = 0, time.monotonic() + 4
    while time.monotonic() < deadline and not seen.ended:
        cuts += redis.client_kill_filter(_type="pubsub")  # only the stream hub subscribes
        time.sleep(0.3)
    reader.join(60)
    response.close()
    assert cuts >= 3 and any("answers again" in line for line in hub_log.lines), (cuts, hub_log.lines)
    assert seen.ended and seen.names()[-1] == "done" and LOST_COMMENT not in seen.comments
    assert seen.names().count("snapshot") == 1, "nothing was lost, so no second snapshot"
    snapshot_id = seen.events[0][0]
    held = [entry_id for entry_id, _ in redis.xrange(events_key(task_id), f"({snapshot_id}", "+")]
    delivered = [event_id for event_id, _, _ in seen.events[1:]]
    assert delivered == held, "every event after the snapshot, exactly once, in order"
    done = json.loads(seen.events[-1][2])
    assert done["state"] == "SUCCESS" and done["completed"] == 5
    assert {r["status"] for r in writer.images(content)} == {"generated"}


def test_json_stream_open_across_a_redis_restart_reaches_done_on_the_same_connection(
        writer, start_worker, live_server, redis_server, app):
    """A restart loses every key: the open stream waits, then sends a fresh snapshot (the
    database fills in what Redis lost) and runs on to ``done``, which agrees with the rows."""
    content, task_id = _batch(writer, start_worker, latency="0.8")
    response, seen, reader = open_stream(live_server, writer.who, task_id)
    wait_for(lambda: writer.progress(task_id)["meta"]["completed"] >= 1, message="one image done")
    before = len(seen.events)
    redis_server.kill()
    time.sleep(2)  # the outage: the worker writes into the void, the stream stays open
    assert not seen.ended, "the stream stays open while Redis is away"
    redis_server.start()
    app.config["HEARTBEAT_STALE_SECONDS"] = 5
    reader.join(60)
    response.close()
    assert seen.ended and seen.names()[-1] == "done", seen.names()
    assert LOST_COMMENT not in seen.comments
    assert "snapshot" in seen.names()[before:], "the keys were lost: a fresh snapshot on the same connection"
    ids = [event_id for event_id, name, _ in seen.events if name not in ("snapshot", "done")]
    assert len(ids) == len(set(ids)), "no event delivered twice"
    result = writer.finished(task_id, timeout=30)
    done = json.loads(seen.events[-1][2])
    assert (done["state"], done["completed"], done["failed"]) == (
        result["state"], result["meta"]["completed"], result["meta"]["failed"])
    rows = {r["id"]: r["status"] for r in writer.images(content)}
    for item in done["results"]:
        assert (rows[item["image_id"]] == "generated") == (item["status"] == "completed"), (item, rows)


def test_long_outage_ends_the_stream_and_the_reconnect_gets_a_snapshot(writer, live_server, redis_server,
                                                                        app):
    """No worker: the task waits. Redis stays away past STREAM_OUTAGE_SECONDS (2 s here): the
    stream says so and ends; reconnecting while Redis is still away gives the database's snapshot."""
    app.config["STREAM_OUTAGE_SECONDS"] = 2.0
    writer.configure(provider="local", model="placeholder", max_in_article_images=1)
    content = writer.article(in_article=1)
    queued = writer.click_generate(content).json
    task_id = queued["task_id"]
    response, seen, reader = open_stream(live_server, writer.who, task_id)
    wait_for(lambda: "snapshot" in seen.names(), message="the snapshot")
    redis_server.kill()
    try:
        killed = time.monotonic()
        reader.join(15)
        took = time.monotonic() - killed
        assert seen.ended and took < 8, took
        assert seen.comments[-1] == LOST_COMMENT and seen.names() == ["snapshot"]
        response.close()
        again, second, second_reader = open_stream(live_server, writer.who, task_id)
        second_reader.join(15)
        again.close()
        assert second.names() == ["snapshot"] and second.comments[-1] == LOST_COMMENT
        body = json.loads(second.events[0][2])
        assert body["task_id"] == task_id and body["state"] == "PENDING"
        assert [i["image_id"] for i in body["meta"]["queue"]] == [i["image_id"] for i in queued["queue"]]
    finally:
        redis_server.start()
    assert Redis.from_url(redis_server.url).ping()


def test_modal_stream_of_a_logged_in_user_rides_out_a_redis_restart(writer, start_worker, live_server,
                                                                    redis_server, app):
    """The restart loses every key, the session's included: the login is still good, so the
    modal's stream (re-checking it every second here) is not revoked and reaches ``done``."""
    app.config["STREAM_AUTH_RECHECK_SECONDS"] = 1.0
    _content, task_id = _batch(writer, start_worker, latency="0.8", in_article=2)
    browser = login_session(live_server, writer.email)
    response = browser.get(f"{live_server.url}/writer/tasks/{task_id}/stream", stream=True, timeout=60)
    assert response.status_code == 200
    seen = Sse()
    reader = threading.Thread(target=read_stream, args=(response, seen), daemon=True)
    reader.start()
    wait_for(lambda: writer.progress(task_id)["meta"]["completed"] >= 1, message="one image done")
    redis_server.kill()
    time.sleep(1.5)  # longer than the re-check interval: the check runs while Redis is away
    redis_server.start()
    app.config["HEARTBEAT_STALE_SECONDS"] = 5
    reader.join(60)
    response.close()
    assert seen.ended and seen.names()[-1] == "done", (seen.names(), seen.comments)
    assert ": access revoked" not in seen.comments and LOST_COMMENT not in seen.comments
