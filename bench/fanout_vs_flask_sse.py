"""Stream fan-out against a peer: igny8's stream hub and flask-sse, side by side in one run.

The peer is flask-sse (``PEER_PACKAGES``: the versions are pinned and printed), installed in a
virtualenv of its own in the bench's temporary folder (``python3 -m venv`` + ``pip install``
from the configured index; ``--peer-venv DIR`` keeps and reuses one), served exactly like igny8:
``gunicorn -k gevent -w 1 --worker-connections 4000``, fd limit raised, on 127.0.0.1. Its app is
the one of flask-sse's README (``PEER_APP``): ``REDIS_URL`` = the bench's private Redis,
``app.register_blueprint(sse, url_prefix="/stream")``, a client reads ``/stream?channel=<id>``.
flask-sse opens one Redis pub/sub connection per stream (``ServerSentEventsBlueprint.messages``
builds a new ``StrictRedis`` and ``pubsub()`` each time); igny8 has one listener per process.

For each level N (default 100, 1000, 2000; ``--clients``), one task / channel per stream
(``--per-task K``: K streams on each), each system is measured alone, one after the other (igny8
first at the 1st and 3rd level, flask-sse first at the 2nd): open its N streams, a first round of
updates (one per task, until every stream has had one: reported apart as "1st p99"), the measured
window of ``--seconds``, then the release. Alone, because igny8's idle streams still work (each
re-checks its credential every 15 s: ~16% of a core for 2,000 idle streams), which must not land
in flask-sse's window; taking turns with both open let it land there, and freezing the waiting
system (SIGSTOP) bunched igny8's re-checks at each thaw instead: both were tried and dropped. The
machine is shared with other test suites, so the two windows may not see the same load: the
"others %" column says how much of the machine the rest took in each, and a verdict whose two
windows differ by more than ``NOISY_POINTS`` points says so. Per system:

- igny8: as ``stream_fanout.py`` — N streams ``GET /api/v1/tasks/<id>/events`` (Bearer token),
  open = every stream has its ``snapshot``; one ``ProgressStore.write_image`` per task per
  second, the writes spread evenly, each with ``phase_at`` = time.time() just before it;
- flask-sse: N streams ``GET /stream?channel=<task id>``. flask-sse sends no byte, not even its
  response headers, before the first message of the channel (gunicorn sends the headers with
  the first chunk of the body), so "live s" = until ``PUBSUB NUMSUB`` of the level's channels
  counts all N subscriptions, then the runner publishes one ``open`` message per channel, and
  "open s" = until every stream has its ``200`` headers. Then one plain redis-py ``PUBLISH``
  per channel per second, spread evenly, of what ``sse.publish(data, type="image")`` publishes
  (``{"data": ..., "type": "image"}`` as JSON, read back by ``Message(**json.loads(...))``):
  the same queue item as igny8's event, with ``phase_at`` = time.time() just before it.

Both: latency = arrival of the event's bytes at the client (``harness/sse_client.py``, one
asyncio process, raw sockets) - ``phase_at``; events delivered vs owed; the web worker's RSS and
Redis connections (``CLIENT LIST`` and the worker's own, psutil) sampled every second; after the
client left, the seconds until the worker let go of every stream (and, for flask-sse, every
subscription), the runner writing to each task/channel once a second meanwhile.

Targets: igny8 p99 <= flask-sse p99 x 1.5 at each level; igny8 delivers every update; igny8's
Redis connections constant (fewer than 1 more per 100 more streams). The ratios igny8 /
flask-sse of p50, p99, open time, RSS and Redis connections are printed for each level.
Run: ``.venv/bin/python bench/fanout_vs_flask_sse.py [--clients 100,1000,2000] [--seconds 15]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import harness
from harness import Stack, Web, fanout, ms, table, verdict
from harness.fanout import Level
from redis import Redis

from igny8.progress.schema import QueueItem

# What pip installed from the configured index (flask-sse 1.0.0 is the release the issue measured).
# hiredis as in igny8's requirements: both sides parse Redis answers with the same C parser.
PEER_PINS = {"Flask-SSE": "1.0.0", "Flask": "3.1.3", "redis": "8.1.0", "hiredis": "3.5.0", "gunicorn": "27.0.1",
             "gevent": "26.9.0"}
EXTRAS = {"gunicorn": "[gevent]"}  # gunicorn 27's gevent worker imports ``packaging``: the extra brings it
PEER_PACKAGES = tuple(f"{name}{EXTRAS.get(name, '')}=={version}" for name, version in PEER_PINS.items())
PEER_APP = '''"""The peer of bench/fanout_vs_flask_sse.py: flask-sse as its README sets it up."""
import os

from flask import Flask
from flask_sse import sse

app = Flask(__name__)
app.config["REDIS_URL"] = os.environ["REDIS_URL"]  # the bench's private Redis
app.register_blueprint(sse, url_prefix="/stream")  # GET /stream?channel=<name>
'''
STALL_SECONDS = 20.0  # no further subscription for this long: the peer stopped accepting streams
NOISY_POINTS = 15.0  # "others %" of the two windows further apart than this: the comparison is noisy


# ---------------------------------------------------------------- the peer's virtualenv and app

class PeerVenv:
    """A virtualenv with ``PEER_PACKAGES``, made in the background (``start``) while the tasks
    are queued, then awaited (``wait``). A ``keep`` folder that already has them is reused."""

    def __init__(self, folder: Path, keep: bool) -> None:
        self.folder, self.keep = folder, keep
        self.python = folder / "bin" / "python"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder.parent / f"{folder.name}-pip.log"

    def versions(self) -> dict[str, str]:
        code = ("import importlib.metadata as m, json; "
                f"print(json.dumps({{d: m.version(d) for d in {list(PEER_PINS)!r}}}))")
        answer = subprocess.run([str(self.python), "-c", code], capture_output=True, text=True)
        return json.loads(answer.stdout) if answer.returncode == 0 else {}

    def start(self) -> None:
        if self.keep and self.python.exists() and self.versions() == PEER_PINS:
            return
        python3 = shutil.which("python3") or sys.executable
        script = (f"{python3} -m venv --clear {self.folder} && {self.python} -m pip install --quiet "
                  + " ".join(f"'{p}'" for p in PEER_PACKAGES))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(["sh", "-c", script], stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def wait(self) -> dict[str, str]:
        if self.proc is not None and self.proc.wait() != 0:
            raise SystemExit(f"could not install the peer ({' '.join(PEER_PACKAGES)}):\n"
                             + self.log.read_text(errors="replace")[-3000:])
        return self.versions()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_peer(stack: Stack, venv: PeerVenv, nofile: int) -> Web:
    app_dir = stack.tmp / "peer"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "peer_app.py").write_text(PEER_APP)
    return stack.web(nofile, gunicorn=venv.folder / "bin" / "gunicorn", app="peer_app:app", chdir=app_dir,
                     name="flask-sse gunicorn")


# ---------------------------------------------------------------- a flask-sse level

def subscriptions(redis: Redis, channels: Sequence[str]) -> int:
    """Live subscriptions to these channels (PUBSUB NUMSUB, one command)."""
    return sum(int(n) for _channel, n in redis.pubsub_numsub(*channels))


def wait_live(redis: Redis, channels: Sequence[str], streams: int) -> float | None:
    """time.time() once ``streams`` subscriptions to ``channels`` are live; None when their count
    stopped growing for STALL_SECONDS."""
    seen, since = -1, time.monotonic()
    while True:
        live = subscriptions(redis, channels)
        if live >= streams:
            return time.time()
        if live > seen:
            seen, since = live, time.monotonic()
        elif time.monotonic() - since > STALL_SECONDS:
            return None
        time.sleep(0.02)


def peer_message(data: dict[str, Any], kind: str) -> str:
    """What ``sse.publish(data, type=kind)`` publishes: ``json.dumps(Message(data, type).to_dict())``."""
    return json.dumps({"data": data, "type": kind})


def open_peer(stack: Stack, peer: Web, tasks: Sequence[tuple[str, QueueItem]], streams: int,
              per_task: int) -> fanout.Run:
    """``streams`` streams of ``/stream?channel=<task id>``, ``per_task`` per channel, opened: every
    subscription live (PUBSUB NUMSUB), then one ``open`` message per channel, which brings each
    stream its headers. The caller closes the run."""
    level_tasks, stream_tasks, subscribers = fanout.spread(tasks, streams, per_task)
    channels = [task_id for task_id, _item in level_tasks]
    redis = stack.redis
    count = 0

    def publish(task: tuple[str, QueueItem]) -> None:
        nonlocal count
        task_id, item = task
        count += 1
        update = dataclasses.replace(item, progress=count % 100, phase_at=time.time())
        redis.publish(task_id, peer_message(update.to_dict(), "image"))

    config: dict[str, object] = {"port": peer.port, "ready_on": "headers", "measure": "image",
                                 "paths": [f"/stream?channel={task_id}" for task_id, _item in stream_tasks]}
    run = fanout.Run(Level("flask-sse", streams, len(level_tasks)), stack, peer, config, level_tasks, subscribers,
                     publish)
    started_at = run.proc.read()["started_at"]
    live_at = wait_live(redis, channels, streams)
    run.level.live = None if live_at is None else live_at - started_at
    with redis.pipeline(transaction=False) as pipe:  # the headers come with the first message
        for channel in channels:
            pipe.publish(channel, peer_message({}, "open"))
        pipe.execute()
    run.opened(run.proc.read())
    return run


def run_peer_level(stack: Stack, peer: Web, tasks: Sequence[tuple[str, QueueItem]], streams: int, per_task: int,
                   seconds: float) -> Level:
    """One level of flask-sse alone: open, first round, ``seconds`` measured, release."""
    run = open_peer(stack, peer, tasks, streams, per_task)
    try:
        if not run.level.complete:
            print(f"flask-sse: only {run.level.ready} of {streams} streams opened "
                  f"({'all' if run.level.live is not None else 'not all'} subscriptions live). "
                  f"Last error in its log: {fanout.last_error(peer)}")
            return run.level
        run.first_round()
        run.measure(seconds)
        run.finish()
    finally:
        run.close()
    channels = [task_id for task_id, _item in run.level_tasks]
    run.release(lambda: fanout.held_streams(peer) + subscriptions(stack.redis, channels))
    return run.level


def run_level(stack: Stack, web: Web, peer: Web, token: str, tasks: Sequence[tuple[str, QueueItem]], streams: int,
              per_task: int, seconds: float, peer_first: bool) -> tuple[Level, Level]:
    """Both systems at one level, one after the other, each alone on the machine's share we have
    (the other's streams closed: igny8's idle streams still work, and that must not land in
    flask-sse's window)."""
    def ours() -> Level:
        level = fanout.run_igny8_level(stack, web, token, tasks, streams, per_task, seconds)
        if not level.complete:
            print(f"igny8: only {level.ready} of {streams} streams got their snapshot. "
                  f"Last error in its log: {fanout.last_error(web)}")
        return level

    def theirs() -> Level:
        return run_peer_level(stack, peer, tasks, streams, per_task, seconds)

    if peer_first:
        peer_level = theirs()
        return ours(), peer_level
    our_level = ours()
    return our_level, theirs()


# ---------------------------------------------------------------- the run

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="100,1000,2000", help="comma-separated stream counts")
    parser.add_argument("--per-task", type=int, default=1, metavar="K", help="streams on each task / channel")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds of updates per level and system")
    parser.add_argument("--peer-venv", type=Path, metavar="DIR",
                        help="make the peer's virtualenv here and keep it (reused when it has the pinned versions)")
    args = parser.parse_args()
    levels = sorted(int(n) for n in args.clients.split(","))
    pairs: list[tuple[Level, Level | None]] = []
    started = time.monotonic()
    with Stack() as stack:
        venv = PeerVenv(args.peer_venv.resolve() if args.peer_venv else stack.tmp / "peer-venv", bool(args.peer_venv))
        venv.start()
        try:
            account = stack.account("Fanout")
            queued = time.monotonic()
            tasks = harness.queue_tasks(stack, account["account_id"], max(1, -(-max(levels) // args.per_task)))
            print(f"{len(tasks)} tasks queued in {time.monotonic() - queued:.1f} s", flush=True)
            versions = venv.wait()
        finally:
            venv.stop()
        print("peer: " + ", ".join(f"{d} {v}" for d, v in versions.items())
              + f" (python3 -m venv, pip install {' '.join(PEER_PACKAGES)})", flush=True)
        nofile = 2 * max(levels) + 1024
        web = stack.web(nofile=nofile)
        peer = start_peer(stack, venv, nofile)
        for count in levels:
            print(f"{count} streams ...", flush=True)
            ours, theirs = run_level(stack, web, peer, account["token"], tasks, count, args.per_task, args.seconds,
                                     peer_first=len(pairs) % 2 == 1)
            pairs.append((ours, theirs))
            if not ours.complete:
                break
    code = report(pairs, versions, args.per_task)
    print(f"\n(run took {time.monotonic() - started:.0f} s)")
    return code


def ratio(a: float, b: float) -> str:
    return f"x{a / b:.2f}" if b and a == a and b == b else "-"


def report(pairs: list[tuple[Level, Level | None]], versions: dict[str, str], per_task: int) -> int:
    watchers = "one task / channel per stream" if per_task == 1 else f"{per_task} streams per task / channel"
    peer = f"flask-sse {versions.get('Flask-SSE', '?')}"
    rows = [[level.system, *level.row()] for pair in pairs for level in pair if level is not None]
    table(f"igny8 and {peer}, each on one gunicorn gevent worker, {watchers}", ["system", *fanout.ROW_HEADERS], rows)
    print(fanout.ROW_NOTES + "\nflask-sse open s: until every stream had its headers (sent with the first message, "
          "published once PUBSUB NUMSUB counted every subscription)")
    side = []
    for ours, theirs in pairs:
        if theirs is None:
            continue
        live = f"{theirs.live:.2f}" if theirs.live is not None else "-"
        side.append([ours.streams, f"{ms(ours.p50)} / {ms(theirs.p50)}", f"{ms(ours.p99)} / {ms(theirs.p99)}",
                     ratio(ours.p99, theirs.p99), f"{ours.connect:.2f} / {live}-{theirs.connect:.2f}",
                     ratio(ours.connect, theirs.connect), f"{ours.cpu:.0f} / {theirs.cpu:.0f}",
                     f"{ours.redis_web} / {theirs.redis_web}",
                     f"{ours.rss:.0f} / {theirs.rss:.0f}"])
    table("Side by side, igny8 / flask-sse (flask-sse open s: subscriptions live - headers received)",
          ["streams", "p50 ms", "p99 ms", "p99 ratio", "open s", "open ratio", "CPU %",
           "web Redis conns", "RSS MB"], side)
    print()
    for ours, theirs in pairs:
        if theirs is not None and ours.complete and theirs.complete:
            print(f"ratio igny8 / flask-sse at {ours.streams} streams: p50 {ratio(ours.p50, theirs.p50)}, "
                  f"p99 {ratio(ours.p99, theirs.p99)}, max {ratio(ours.max, theirs.max)}, "
                  f"open s {ratio(ours.connect, theirs.connect)}, worker CPU {ratio(ours.cpu, theirs.cpu)}, "
                  f"RSS {ratio(ours.rss, theirs.rss)}, "
                  f"web worker's Redis connections {ours.redis_web} vs {theirs.redis_web}")
    print()
    results = []
    for ours, theirs in pairs:
        met = bool(theirs and ours.complete and theirs.complete and ours.p99 <= theirs.p99 * 1.5)
        figure = (f"{ms(ours.p99)} ms vs {ms(theirs.p99)} ms ({ratio(ours.p99, theirs.p99)})"
                  if theirs and ours.complete and theirs.complete else "not measured: not every stream opened")
        if theirs and abs(ours.others - theirs.others) > NOISY_POINTS:
            figure += (f" - noisy: the rest of the machine took {ours.others:.0f}% of it in igny8's window, "
                       f"{theirs.others:.0f}% in flask-sse's")
        results.append(verdict(f"{ours.streams} streams: igny8 p99 <= flask-sse p99 x 1.5", met, figure))
    measured = [ours for ours, _theirs in pairs if ours.complete]
    results.append(verdict(
        "igny8 delivers every update", len(measured) == len(pairs) and all(r.all_delivered for r in measured),
        ", ".join(f"{r.delivered}/{r.expected} at {r.streams} ({r.errors} errors)" for r in measured) or "-"))
    if measured:
        base, top = measured[0], measured[-1]
        peers = [theirs for _ours, theirs in pairs if theirs is not None and theirs.complete]
        results.append(verdict(
            "igny8 Redis connections constant (< 1 more per 100 more streams)",
            max(r.redis_web for r in measured) - base.redis_web < max(top.streams - base.streams, 100) / 100,
            "igny8 " + " -> ".join(str(r.redis_web) for r in measured) + ", flask-sse "
            + (" -> ".join(str(r.redis_web) for r in peers) or "-") + " (web worker)"))
    else:
        results.append(verdict("igny8 Redis connections constant", False, "not measured"))
    return harness.exit_code(results)


if __name__ == "__main__":
    raise SystemExit(main())
