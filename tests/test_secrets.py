"""A known provider key is used for the provider call and appears nowhere else: not in any
response, page, event stream, log line, RQ job, rq-dashboard view or Redis value, and the
database holds it only encrypted."""

from __future__ import annotations

import requests
from flask import Flask
from redis import Redis
from rq.job import Job
from sqlalchemy import select

from igny8.extensions import db
from igny8.models import IntegrationSettings
from tests.support.writer import Writer

KEY = "sk-proj-KNOWN-SECRET-7f3a9c1e5b2d4680"

Seen = list[tuple[str, str]]  # (where, what was there)


def _api_answers(writer: Writer, content_id: int, task_id: str) -> Seen:
    seen = []
    api = ["/api/v1/system/integrations/openai/", "/api/v1/system/integrations/runware/",
           "/api/v1/system/integrations/image_generation/", "/api/v1/writer/content/",
           f"/api/v1/writer/images/?content_id={content_id}", f"/api/v1/system/settings/task_progress/{task_id}/"]
    for path in api:
        response = writer.client.get(path, headers=writer.headers)
        assert response.status_code == 200, path
        seen.append((path, response.get_data(as_text=True)))
    return seen


def _event_stream(live_server, writer: Writer, task_id: str) -> Seen:  # noqa: ANN001
    stream = requests.get(f"{live_server.url}/api/v1/tasks/{task_id}/events",
                          headers=dict(writer.headers, Accept="text/event-stream"), timeout=30)
    return [("events", stream.text)]


def _pages_an_operator_sees(writer: Writer, content_id: int, task_id: str) -> Seen:
    """The writer's pages and the queue dashboard, logged in as an operator."""
    writer.login()
    seen = []
    pages = ["/writer/images", f"/writer/content/{content_id}/edit", "/settings/integrations",
             "/settings/api-token", f"/writer/tasks/{task_id}/modal", "/rq/", "/rq/0/data/queues.json",
             "/rq/0/data/workers.json", f"/rq/0/data/job/{task_id}.json", "/rq/0/view/jobs",
             "/rq/0/data/jobs/images/finished/8/asc/1.json", f"/rq/0/view/job/{task_id}"]
    for path in pages:
        response = writer.client.get(path)
        assert response.status_code == 200, path
        seen.append((path, response.get_data(as_text=True)))
    return seen


def _redis_values(app: Flask, redis: Redis) -> Seen:
    """Every key's value, read with the RQ connection (bytes, as RQ stores them)."""
    rq_redis = app.extensions["rq_redis"]
    seen = []
    for key in redis.scan_iter("*"):
        kind = redis.type(key)
        value = {"string": lambda k: rq_redis.get(k),
                 "hash": lambda k: rq_redis.hgetall(k),
                 "list": lambda k: rq_redis.lrange(k, 0, -1),
                 "set": lambda k: rq_redis.smembers(k),
                 "zset": lambda k: rq_redis.zrange(k, 0, -1),
                 "stream": lambda k: rq_redis.xrange(k)}.get(kind, lambda k: b"")(key)
        seen.append((f"redis {key}", repr(value)))
    return seen


def _stored_only_encrypted(app: Flask) -> None:
    with app.app_context():
        row = db.session.scalars(select(IntegrationSettings).filter_by(integration_type="openai")).one()
        stored = (row.api_key_encrypted, row.key_hint, row.config)
        db.session.remove()
    assert stored[0] and KEY not in repr(stored) and KEY[8:] not in repr(stored), "encrypted at rest"


def test_a_known_key_appears_nowhere_but_at_the_provider(app, writer, accounts, fake_openai, start_worker,
                                                         live_server, redis):
    saved = writer.save_api_key("openai", KEY)
    writer.configure(provider="openai", max_in_article_images=2)
    worker = start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    content = writer.article(in_article=2)
    queued = writer.click_generate(content)
    task_id = queued.json["task_id"]
    done = writer.finished(task_id)
    assert done["meta"]["completed"] == 3
    assert fake_openai.authorization == f"Bearer {KEY}", "the key did reach the provider"

    seen: Seen = [("generate", saved.get_data(as_text=True)), ("queue", queued.get_data(as_text=True))]
    seen += _api_answers(writer, content["id"], task_id)
    seen += _event_stream(live_server, writer, task_id)
    accounts.make_operator(writer.who)  # an operator sees the dashboard too
    seen += _pages_an_operator_sees(writer, content["id"], task_id)
    job = Job.fetch(task_id, connection=app.extensions["rq_redis"])
    seen.append(("rq job", repr((job.args, job.kwargs, job.description, job.meta, job.return_value()))))
    seen.append(("worker log", worker.output()))
    seen += _redis_values(app, redis)
    assert len(seen) > 20
    leaks = [where for where, body in seen if KEY in body or KEY[8:] in body]
    assert leaks == [], f"the key leaked into: {leaks}"

    _stored_only_encrypted(app)
