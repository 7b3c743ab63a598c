"""The stream hub's guarantees on a real Redis: every event after a subscriber's snapshot arrives
once and in order — across a burst of 500 tasks subscribed while they are written, a late
subscriber catching up on a watched task, and a listener that falls behind (full notice batches)."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from redis import Redis

from igny8.progress.events import EventName
from igny8.progress.keys import NOTICES_KEY, events_key
from igny8.progress.schema import QueueItem
from igny8.progress.store import ProgressStore
from igny8.streaming import notices as notices_module
from igny8.streaming.hub import StreamHub, Subscriber


def _item(seq: int) -> QueueItem:
    return QueueItem(image_id=1, index=1, label="Featured", type="featured", position=0, content_title="T",
                     progress=seq % 100, note=str(seq))


def _last_id(redis: Redis, task_id: str) -> str:
    last = redis.xrevrange(events_key(task_id), "+", "-", count=1)
    return last[0][0] if last else "0-0"


def _received(sub: Subscriber, until: int, timeout: float = 30.0) -> list[int]:
    """The sequence numbers ``sub`` got, read until ``until`` arrives (or the timeout)."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (not seen or seen[-1] != until):
        batch = sub.get(timeout=0.5) or []
        seen += [int(e.data["note"]) for e in batch if e.name == EventName.IMAGE]
    return seen


def _watched(hub: StreamHub, store: ProgressStore, count: int) -> dict[str, Subscriber]:
    """``count`` new tasks, each with one event, subscribed from after it (as a stream would)."""
    subs = {}
    for task_id in (uuid.uuid4().hex for _ in range(count)):
        store.write_image(task_id, _item(0))
        subs[task_id] = hub.subscribe(task_id, _last_id(store.redis, task_id))
    return subs


@pytest.fixture
def store(redis_server) -> ProgressStore:  # noqa: ANN001
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    redis.flushdb()
    return ProgressStore(redis)


def test_a_burst_of_500_tasks_subscribed_while_written_loses_and_repeats_nothing(store, redis_server):
    hub = StreamHub(redis_server.url, block_ms=500)
    tasks = [uuid.uuid4().hex for _ in range(500)]
    for task_id in tasks:
        store.write_image(task_id, _item(0))
    rounds, subs = 6, {}
    written = threading.Event()

    def write() -> None:  # every task gets rounds more events while the subscriptions happen
        for seq in range(1, rounds + 1):
            for task_id in tasks:
                store.write_image(task_id, _item(seq))
        written.set()

    writer = threading.Thread(target=write)
    writer.start()
    for task_id in tasks:  # the snapshot id a stream would take, then its subscription
        after = _last_id(store.redis, task_id)
        subs[task_id] = (hub.subscribe(task_id, after), after)
    writer.join(60)
    assert written.is_set()
    for task_id in tasks:  # one more each after every subscription is in: the last event is known
        store.write_image(task_id, _item(rounds + 1))
    for task_id, (sub, after) in subs.items():
        expected = [int(json.loads(fields["data"])["note"])
                    for _id, fields in store.redis.xrange(events_key(task_id), f"({after}", "+")]
        assert expected[-1] == rounds + 1
        assert _received(sub, rounds + 1) == expected, task_id  # exactly the events after its snapshot, in order
        hub.unsubscribe(sub)
    assert hub.watching() == 0


def test_a_late_subscriber_catches_up_on_a_watched_task_then_follows(store, redis_server):
    hub = StreamHub(redis_server.url, block_ms=500)
    task_id = uuid.uuid4().hex
    store.write_image(task_id, _item(0))
    first = hub.subscribe(task_id, _last_id(store.redis, task_id))
    resume_from = _last_id(store.redis, task_id)
    for seq in range(1, 4):
        store.write_image(task_id, _item(seq))
    assert _received(first, 3) == [1, 2, 3]
    late = hub.subscribe(task_id, resume_from)  # a reconnect with Last-Event-ID
    store.write_image(task_id, _item(4))
    assert _received(late, 4) == [1, 2, 3, 4]
    assert _received(first, 4) == [4]


def test_a_listener_that_falls_behind_reads_every_watched_stream_once(store, redis_server, monkeypatch):
    """A listener that missed the published notices reads them from the notices stream; full
    batches there (notices possibly trimmed) make it read every watched stream from its cursor:
    still nothing lost, nothing twice."""
    monkeypatch.setattr(notices_module, "NOTICE_BATCH", 3)
    monkeypatch.setattr(notices_module, "NOTICES_CHANNEL", "igny8:elsewhere")  # hears none of them
    hub = StreamHub(redis_server.url, block_ms=500)
    subs = _watched(hub, store, 20)
    tasks = list(subs)
    for seq in range(1, 11):
        for task_id in tasks:
            store.write_image(task_id, _item(seq))
    store.redis.xtrim(NOTICES_KEY, maxlen=5)  # most notices are gone
    for task_id in tasks:
        assert _received(subs[task_id], 10) == list(range(1, 11)), task_id


def test_a_new_watcher_costs_one_read_of_its_own_stream_and_an_event_costs_none(store, redis_server):
    """Seen by Redis itself (MONITOR): subscribing to one more task reads that task's stream only,
    and the events of the watched tasks reach the listener without it sending a read — whatever
    number of tasks is watched (it only checks the notices stream's last id when quiet)."""
    hub = StreamHub(redis_server.url + "?client_name=hub-under-watch", block_ms=300)
    subs = _watched(hub, store, 200)
    watched = list(subs)
    time.sleep(0.5)
    commands: list[tuple[str, str]] = []  # (client address, command)
    stop = threading.Event()

    def monitor() -> None:
        with Redis.from_url(redis_server.url, decode_responses=True).monitor() as feed:
            for entry in feed.listen():
                commands.append((f"{entry['client_address']}:{entry['client_port']}", entry["command"]))
                if stop.is_set():
                    return

    watcher = threading.Thread(target=monitor, daemon=True)
    watcher.start()
    time.sleep(0.3)
    newcomer = uuid.uuid4().hex
    store.write_image(newcomer, _item(0))
    hub.subscribe(newcomer, _last_id(store.redis, newcomer))
    store.write_image(newcomer, _item(1))
    for task_id in watched[:50]:
        store.write_image(task_id, _item(1))
    for task_id in watched[:50]:
        assert _received(subs[task_id], 1) == [1]
    time.sleep(0.5)
    stop.set()
    store.redis.ping()  # one more command so the monitor sees the stop
    watcher.join(5)
    hub_clients = {c["addr"] for c in store.redis.client_list() if c["name"] == "hub-under-watch"}
    reads = [c for addr, c in commands if addr in hub_clients and c.startswith(("XRANGE", "XREAD", "XREVRANGE"))]
    assert not [c for c in reads if c.startswith("XREAD")], reads  # events are pushed, never asked for
    assert [c.split()[1] for c in reads if c.startswith("XRANGE")] == [events_key(newcomer)], reads
    quiet_checks = [c for c in reads if c.startswith("XREVRANGE")]
    assert {c.split()[1] for c in quiet_checks} <= {NOTICES_KEY, events_key(newcomer)}, reads
    assert len(quiet_checks) <= 8, reads  # one per block_ms at most, not one per event (51 here)


def test_notices_from_an_older_writer_without_their_event_are_read_from_the_task_stream(store, redis_server):
    """A notice that carries only the task id and is not published (written by the previous
    version during a deploy) makes the listener read that task's stream — when the next published
    notice shows the gap, or when the listener is quiet; events carried by later notices are
    neither lost nor repeated, and arrive in order."""
    hub = StreamHub(redis_server.url, block_ms=300)
    task_id = uuid.uuid4().hex
    store.write_image(task_id, _item(0))
    sub = hub.subscribe(task_id, _last_id(store.redis, task_id))
    time.sleep(0.4)  # the listener is blocked on the notices

    def old_write(seq: int) -> None:
        with store.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(events_key(task_id), {"event": EventName.IMAGE, "data": json.dumps(_item(seq).to_dict())})
            pipe.xadd(NOTICES_KEY, {"t": task_id})
            pipe.execute()

    store.write_image(task_id, _item(1))
    old_write(2)
    store.write_image(task_id, _item(3))
    old_write(4)
    store.write_image(task_id, _item(5))
    old_write(6)  # no published notice after this one
    assert _received(sub, 6) == [1, 2, 3, 4, 5, 6]
    assert sub.get(timeout=0.5) is None  # nothing twice


def test_notices_published_while_the_listener_reconnects_arrive_once_and_in_order(store, redis_server):
    """Redis drops the listener's subscription (a restart of the connection, an output buffer
    overrun): what was published meanwhile is read from Redis once it is subscribed again."""
    hub = StreamHub(redis_server.url, block_ms=300)
    subs = _watched(hub, store, 20)
    tasks = list(subs)
    time.sleep(0.4)
    for seq in range(1, 31):
        if seq % 10 == 0:  # once subscribed again, the subscription drops again
            deadline = time.monotonic() + 5
            while not store.redis.client_list(_type="pubsub") and time.monotonic() < deadline:
                time.sleep(0.01)
            assert store.redis.client_kill_filter(_type="pubsub") >= 1
        for task_id in tasks:
            store.write_image(task_id, _item(seq))
    for task_id in tasks:
        assert _received(subs[task_id], 30) == list(range(1, 31)), task_id
        assert subs[task_id].get(timeout=0.05) is None


def test_a_notice_carries_its_event_and_the_id_it_has_in_the_task_stream(store):
    event_id = store.write_image("t1", _item(7))
    [(_notice_id, notice)] = store.redis.xrange(NOTICES_KEY)
    assert notice["t"] == "t1" and notice["i"] == event_id and notice["event"] == EventName.IMAGE
    assert json.loads(notice["data"])["note"] == "7"
    [(stream_id, entry)] = store.redis.xrange(events_key("t1"))
    assert stream_id == event_id and entry["data"] == notice["data"]
    assert store.redis.ttl(events_key("t1")) > 0
