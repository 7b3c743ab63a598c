"""The account stream (GET /api/v1/events) read by a real SSE client over a real HTTP server, with
real workers generating images: snapshot first, then every task of the account live (also one
started after the stream opened), nothing lost or repeated, resume, isolation, clients freed."""

from __future__ import annotations

import json
import time

import pytest
import requests
import sseclient

from igny8.progress.keys import ACCOUNT_PREFIX, account_events_key
from igny8.streaming.hub import get_hub
from tests.support.accounts import login_session
from tests.support.streams import account_streams_freed
from tests.support.waiting import wait_for

EVENTS = "/api/v1/events"


@pytest.fixture
def app_config(app_config: dict) -> dict:
    """Keepalives every second: a stream whose client left is freed within a second or two."""
    return {**app_config, "STREAM_KEEPALIVE_SECONDS": 1.0}


@pytest.fixture(autouse=True)
def _streams_freed(app):  # noqa: ANN001, ANN202
    yield
    account_streams_freed(app)


class AccountStream:
    """One open account stream: its events, read as they come."""

    def __init__(self, live_server, headers: dict | None = None, last_event_id: str | None = None,  # noqa: ANN001
                 session: requests.Session | None = None) -> None:
        headers = dict(headers or {}, Accept="text/event-stream")
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.response = (session or requests).get(f"{live_server.url}{EVENTS}", headers=headers, stream=True,
                                                   timeout=30)
        assert self.response.status_code == 200, self.response.text[:300]
        self.events = sseclient.SSEClient(self.response).events()
        self.seen: list = []

    def next(self):  # noqa: ANN201
        event = next(self.events)
        self.seen.append(event)
        return event

    def until(self, predicate, limit: int = 2000) -> list:  # noqa: ANN001
        """Read until ``predicate(event)``; the events read (that one included)."""
        read = []
        for _ in range(limit):
            read.append(self.next())
            if predicate(read[-1]):
                return read
        raise AssertionError("the awaited event never came")

    def close(self) -> None:
        self.response.close()


def data(event) -> dict:  # noqa: ANN001
    return json.loads(event.data)


def ended(task_id: str):  # noqa: ANN201
    """The ``task`` event that says the task has ended."""
    return lambda e: e.event == "task" and data(e)["task_id"] == task_id and data(e)["state"] in ("SUCCESS", "FAILURE")


def test_snapshot_of_unfinished_tasks_then_live_events_of_a_task_started_later(writer, start_worker, live_server):
    writer.configure(provider="local", model="placeholder", max_in_article_images=2)
    waiting = writer.generate(writer.article(in_article=2, title="Queued before"))  # no worker yet: PENDING
    stream = AccountStream(live_server, writer.headers)
    assert stream.response.headers["Content-Type"].startswith("text/event-stream")
    assert stream.response.headers["Cache-Control"] == "no-cache"
    snapshot = stream.next()
    assert snapshot.event == "snapshot" and snapshot.id
    body = data(snapshot)
    assert [t["task_id"] for t in body["tasks"]] == [waiting] and body["unfinished"] == 1
    assert body["tasks"][0]["state"] == "PENDING" and len(body["tasks"][0]["meta"]["queue"]) == 3
    start_worker(LOCAL_PROVIDER_LATENCY="0.2")
    later = writer.generate(writer.article(in_article=1, title="Started after the stream opened"))
    events = stream.until(ended(later)) if not any(ended(later)(e) for e in stream.seen) else []
    events += stream.until(ended(waiting)) if not any(ended(waiting)(e) for e in stream.seen) else []
    stream.close()
    live = stream.seen[1:]
    assert {e.event for e in live} <= {"task", "image"}
    assert all(e.id and data(e)["task_id"] in (waiting, later) for e in live), "every event names its task"
    assert [e for e in live if data(e)["task_id"] == later][0].event == "task", "a new task announces itself"
    finals = {data(e)["image_id"]: data(e) for e in live if e.event == "image" and data(e)["task_id"] == later}
    assert len(finals) == 2 and all(item["status"] == "completed" and item["image_url"] for item in finals.values())


def test_a_burst_of_tasks_arrives_exactly_once_and_in_order(app, writer, start_worker, live_server, redis):
    writer.configure(provider="local", model="placeholder", max_in_article_images=3, concurrency=3)
    start_worker()
    start_worker()
    stream = AccountStream(live_server, writer.headers)
    snapshot = stream.next()
    tasks = [writer.generate(writer.article(in_article=3, title=f"Burst {n}")) for n in range(6)]
    for task_id in tasks:
        if not any(ended(task_id)(e) for e in stream.seen):
            stream.until(ended(task_id))
    stream.close()
    live = stream.seen[1:]
    stored = redis.xrange(account_events_key(writer.who["account_id"]), f"({snapshot.id}", live[-1].id)
    assert [e.id for e in live] == [entry_id for entry_id, _ in stored], "exactly the account's events, in order"
    assert len({e.id for e in live}) == len(live)
    assert {data(e)["task_id"] for e in live} == set(tasks)
    for task_id in tasks:  # each task's own stream holds the same events
        own = [e for e in live if data(e)["task_id"] == task_id]
        stored = [fields["event"] for _id, fields in redis.xrange(f"igny8:task:{task_id}:events")]
        assert [e.event for e in own] == [name for name in stored if name != "done"], "all but done"


def test_last_event_id_resumes_with_what_was_missed_or_a_fresh_snapshot(writer, start_worker, live_server, redis):
    writer.configure(provider="local", model="placeholder", max_in_article_images=4)
    start_worker(LOCAL_PROVIDER_LATENCY="0.3")
    full = AccountStream(live_server, writer.headers)
    full.next()
    first = AccountStream(live_server, writer.headers)
    first.next()
    task_id = writer.generate(writer.article())
    head = [first.next() for _ in range(5)]
    first.close()  # dropped mid-batch
    resumed = AccountStream(live_server, writer.headers, last_event_id=head[-1].id)
    rest = resumed.until(ended(task_id))
    resumed.close()
    assert rest[0].event != "snapshot", "a resumable id replays what was missed instead"
    reference = full.until(ended(task_id))
    full.close()
    assert [e.id for e in head + rest] == [e.id for e in reference], "nothing missed, nothing twice"
    too_old = AccountStream(live_server, writer.headers, last_event_id="1-0")
    assert too_old.next().event == "snapshot", "events no longer kept: a fresh snapshot"
    too_old.close()


def test_anonymous_is_401_and_an_account_never_sees_another_accounts_events(writer, writer_for, globex, worker,
                                                                           live_server):
    anonymous = requests.get(f"{live_server.url}{EVENTS}", timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["success"] is False
    bad_token = requests.get(f"{live_server.url}{EVENTS}", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert bad_token.status_code == 401
    other = writer_for(globex)
    writer.configure(provider="local", model="placeholder", max_in_article_images=1)
    other.configure(provider="local", model="placeholder", max_in_article_images=1)
    secret = writer.generate(writer.article(in_article=1, title="Acme secret"))
    browser = login_session(live_server, globex["email"])  # Globex's writer, by session cookie
    spy = AccountStream(live_server, session=browser)
    snapshot = spy.next()
    assert "Acme secret" not in snapshot.data and secret not in snapshot.data
    writer.finished(secret)
    second = writer.generate(writer.article(in_article=1, title="Acme secret 2"))
    writer.finished(second)
    own = other.generate(other.article(in_article=1, title="Globex own"))
    events = spy.until(ended(own))
    spy.close()
    assert {data(e)["task_id"] for e in events} == {own}
    assert not any("Acme secret" in e.data for e in events)


def test_a_client_that_leaves_is_freed(app, writer, worker, live_server):
    writer.configure(provider="local", model="placeholder", max_in_article_images=1)
    hub = get_hub(app.config["REDIS_URL"])
    before = hub.watching()
    streams = [AccountStream(live_server, writer.headers) for _ in range(5)]
    for stream in streams:
        assert stream.next().event == "snapshot"
    wait_for(lambda: hub.watching() == before + 5, message="five account subscribers")
    for stream in streams:
        stream.close()
    # The server notices a client has gone at its next write (an event, or the keepalive).
    task_id = writer.generate(writer.article(in_article=1))
    writer.finished(task_id)
    wait_for(lambda: hub.watching() == before, timeout=20, message="the subscribers freed")
    time.sleep(0.2)
    assert hub.watching() == before


def test_a_quiet_stream_sets_retry_and_sends_keepalives(writer, live_server):
    """``retry:`` first; a keepalive comment every STREAM_KEEPALIVE_SECONDS (1 s here, 15 s at most)."""
    response = requests.get(f"{live_server.url}{EVENTS}", headers=writer.headers, stream=True, timeout=30)
    lines = response.iter_lines(decode_unicode=True)
    started = time.monotonic()
    seen = []
    for line in lines:
        seen.append(line)
        if line == ": keepalive" and seen.count(": keepalive") == 2:
            break
    response.close()
    assert seen[0] == "retry: 2000"
    assert "event: snapshot" in seen and any(line.startswith("id: ") for line in seen)
    assert time.monotonic() - started < 6, "two keepalives within a few seconds"


def test_a_stopping_server_ends_its_streams_at_once(app, writer, live_server):
    """``close_all`` (a server that stops): every open stream ends with a comment, no write needed."""
    response = requests.get(f"{live_server.url}{EVENTS}", headers=writer.headers, stream=True, timeout=30)
    lines = response.iter_lines(decode_unicode=True)
    assert next(line for line in lines if line.startswith("event:")) == "event: snapshot"
    hub = get_hub(app.config["REDIS_URL"])
    wait_for(lambda: hub.watching(ACCOUNT_PREFIX) == 1, message="the stream subscribed")  # after its snapshot
    hub.close_all()
    rest = list(lines)  # the server ends the response
    response.close()
    assert ": server closing, reconnect" in rest
