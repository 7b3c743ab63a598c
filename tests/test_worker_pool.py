"""``WORKER_PROCESSES``: one ``worker.py`` running several RQ worker loops, forked after the app
is loaded (igny8/ops/forks.py). Each loop runs a batch, so as many batches run at once; a loop
that dies is forked again; SIGTERM stops them all; the shared per-account provider limit holds."""

from __future__ import annotations

import os
import signal

from redis import Redis
from rq import Worker

from igny8.extensions import db
from igny8.models import GenerationTask
from tests.support.processes import children_of
from tests.support.waiting import wait_for


def rq_workers(redis_url: str) -> int:
    with Redis.from_url(redis_url) as connection:
        return Worker.count(connection=connection)


def test_one_worker_process_runs_three_batches_at_once(app, accounts, writer_for, start_worker, app_config):
    worker = start_worker(WORKER_PROCESSES="3", LOCAL_PROVIDER_LATENCY="1")
    wait_for(lambda: rq_workers(app_config["REDIS_URL"]) == 3, timeout=30, message="3 RQ worker loops")
    writers = [writer_for(accounts.create(name)) for name in ("Acme", "Globex", "Initech")]
    tasks = []
    for writer in writers:
        writer.configure(provider="local", model="placeholder", max_in_article_images=1)
        tasks.append(writer.generate(writer.article(in_article=1)))
    for writer, task_id in zip(writers, tasks, strict=True):
        assert writer.finished(task_id)["state"] == "SUCCESS"
    with app.app_context():
        rows = [db.session.get(GenerationTask, task_id) for task_id in tasks]
        assert max(r.started_at for r in rows) < min(r.finished_at for r in rows), "the three batches overlapped"
        db.session.remove()
    loops = children_of(worker.proc.pid)
    assert len(loops) >= 3  # three loops (plus RQ's scheduler, a child of one of them)
    os.kill(loops[0], signal.SIGKILL)
    wait_for(lambda: len(children_of(worker.proc.pid)) >= 3 and loops[0] not in children_of(worker.proc.pid),
             timeout=30, message="the killed loop forked again")
    wait_for(lambda: "worker_process_died" in worker.output(), timeout=10, message="the parent's log line")
    worker.stop()
    assert worker.proc.returncode == 0 and all(not os.path.exists(f"/proc/{pid}") for pid in loops[1:])
