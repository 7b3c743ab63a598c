"""A known provider key is used for the provider call and appears nowhere else: not in any
response, page, event stream, log line, RQ job, rq-dashboard view or Redis value, and the
database holds it only encrypted."""

from __future__ import annotations

import requests
from rq.job import Job
from sqlalchemy import select

from igny8.extensions import db
from igny8.models import IntegrationSettings
from tests.support.writer import GENERATE, article, configure, finished

KEY = "sk-proj-KNOWN-SECRET-7f3a9c1e5b2d4680"


def test_a_known_key_appears_nowhere_but_at_the_provider(app, client, auth, acme, accounts, fake_openai, start_worker,
                                                         live_server, redis):
    saved = client.put("/api/v1/system/integrations/openai/", json={"api_key": KEY}, headers=acme["headers"])
    assert saved.status_code == 200
    configure(client, acme, provider="openai", max_in_article_images=2)
    worker = start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    content = article(client, acme, in_article=2)
    queued = client.post(GENERATE, json={"content_id": content["id"]}, headers=acme["headers"])
    task_id = queued.json["task_id"]
    done = finished(client, acme, task_id)
    assert done["meta"]["completed"] == 3
    assert fake_openai.authorization == f"Bearer {KEY}", "the key did reach the provider"

    seen: list[tuple[str, str]] = [("generate", saved.get_data(as_text=True)), ("queue", queued.get_data(as_text=True))]
    api = ["/api/v1/system/integrations/openai/", "/api/v1/system/integrations/runware/",
           "/api/v1/system/integrations/image_generation/", "/api/v1/writer/content/",
           f"/api/v1/writer/images/?content_id={content['id']}", f"/api/v1/system/settings/task_progress/{task_id}/"]
    for path in api:
        response = client.get(path, headers=acme["headers"])
        assert response.status_code == 200, path
        seen.append((path, response.get_data(as_text=True)))
    stream = requests.get(f"{live_server.url}/api/v1/tasks/{task_id}/events",
                          headers=dict(acme["headers"], Accept="text/event-stream"), timeout=30)
    seen.append(("events", stream.text))
    accounts.make_operator(acme)
    auth.login(acme["email"])  # an operator sees the dashboard too
    pages = ["/writer/images", f"/writer/content/{content['id']}/edit", "/settings/integrations",
             "/settings/api-token", f"/writer/tasks/{task_id}/modal", "/rq/", "/rq/0/data/queues.json",
             "/rq/0/data/workers.json", f"/rq/0/data/job/{task_id}.json", "/rq/0/view/jobs",
             "/rq/0/data/jobs/images/finished/8/asc/1.json", f"/rq/0/view/job/{task_id}"]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        seen.append((path, response.get_data(as_text=True)))
    job = Job.fetch(task_id, connection=app.extensions["rq_redis"])
    seen.append(("rq job", repr((job.args, job.kwargs, job.description, job.meta, job.return_value()))))
    seen.append(("worker log", worker.output()))
    for key in redis.scan_iter("*"):
        kind = redis.type(key)
        value = {"string": lambda k: app.extensions["rq_redis"].get(k),
                 "hash": lambda k: app.extensions["rq_redis"].hgetall(k),
                 "list": lambda k: app.extensions["rq_redis"].lrange(k, 0, -1),
                 "set": lambda k: app.extensions["rq_redis"].smembers(k),
                 "zset": lambda k: app.extensions["rq_redis"].zrange(k, 0, -1),
                 "stream": lambda k: app.extensions["rq_redis"].xrange(k)}.get(kind, lambda k: b"")(key)
        seen.append((f"redis {key}", repr(value)))
    assert len(seen) > 20
    leaks = [where for where, body in seen if KEY in body or KEY[8:] in body]
    assert leaks == [], f"the key leaked into: {leaks}"

    with app.app_context():
        row = db.session.scalars(select(IntegrationSettings).filter_by(integration_type="openai")).one()
        stored = (row.api_key_encrypted, row.key_hint, row.config)
        db.session.remove()
    assert stored[0] and KEY not in repr(stored) and KEY[8:] not in repr(stored), "encrypted at rest"
