"""Webhooks (DESIGN.md, "Webhooks"): the setting (URL under the URL policy, a write-only secret),
``task.finished`` delivered once per task from every path that ends one, signed, retried with
backoff, listed per account. Real Redis, database, worker processes and a local receiver."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from igny8.extensions import db
from igny8.models import GenerationTask, IntegrationSettings, WebhookDelivery
from igny8.tasks.announce import announce_finished
from igny8.tasks.reconcile import fail_task
from igny8.webhooks.signing import verify
from tests.support.waiting import wait_for

WEBHOOK = "/api/v1/system/integrations/webhook/"
DELIVERIES = "/api/v1/system/integrations/webhook/deliveries"
SECRET = "whsec-0123456789-abcdef-SECRET"
FAST_RETRIES = {"WEBHOOK_RETRY_INTERVALS": "1,1,1,1,1", "WEBHOOK_TIMEOUT": "1"}


@pytest.fixture
def hooked(app, writer, webhook_receiver):  # noqa: ANN001, ANN201
    """Acme's writer with the local provider and a webhook at the receiver (allowed over http)."""
    app.config["ALLOWED_HTTP_HOSTS"] = (webhook_receiver.allowed_host,)
    writer.configure(provider="local", model="placeholder", max_in_article_images=1)
    response = writer.client.put(WEBHOOK, json={"url": webhook_receiver.url(), "secret": SECRET},
                                 headers=writer.headers)
    assert response.status_code == 200, response.json
    assert response.json == {"success": True, "configured": True, "url": webhook_receiver.url()}
    return writer


@pytest.fixture
def hook_worker(start_worker, webhook_receiver):  # noqa: ANN001, ANN201
    return start_worker(ALLOWED_HTTP_HOSTS=webhook_receiver.allowed_host, **FAST_RETRIES)


def deliveries(writer) -> list[dict]:  # noqa: ANN001
    response = writer.client.get(DELIVERIES, headers=writer.headers)
    assert response.status_code == 200
    return response.json["deliveries"]


def settled(writer, count: int = 1, timeout: float = 40) -> list[dict]:  # noqa: ANN001
    """Wait until ``count`` deliveries exist and none is pending."""
    return wait_for(lambda: (rows := deliveries(writer)) and len(rows) == count
                    and all(row["state"] != "pending" for row in rows) and rows, timeout=timeout,
                    message="deliveries to settle")


def test_a_finished_task_is_delivered_once_signed_with_the_secret(hooked, hook_worker, webhook_receiver):
    content = hooked.article(in_article=1)
    task_id = hooked.generate(content)
    assert hooked.finished(task_id)["state"] == "SUCCESS"
    [row] = settled(hooked)
    assert (row["event"], row["state"], row["attempts"], row["status_code"], row["error"]) == \
        ("task.finished", "delivered", 1, 200, None)
    [received] = webhook_receiver.deliveries()
    assert received.path == "/hook"
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["X-Igny8-Event"] == "task.finished"
    assert received.headers["X-Igny8-Delivery"] == row["delivery"]
    assert verify(SECRET, received.body, received.headers["X-Igny8-Signature"])
    assert received.headers["X-Igny8-Signature"].startswith("sha256=")
    assert not verify("another-secret-0123456789", received.body, received.headers["X-Igny8-Signature"])
    body = json.loads(received.body)
    assert body["event"] == "task.finished"
    assert {k: body["data"][k] for k in ("task_id", "state", "outcome", "total", "completed", "failed",
                                          "content_id")} == \
        {"task_id": task_id, "state": "SUCCESS", "outcome": "generated", "total": 2, "completed": 2, "failed": 0,
         "content_id": content["id"]}
    assert body["data"]["cost"] == 0.0
    # Exactly once: the sweep and later reads of the task announce nothing more.
    hooked.progress(task_id)
    with hooked.client.application.app_context():
        announce_finished(db.session.get(GenerationTask, task_id))
    assert len(deliveries(hooked)) == 1 and len(webhook_receiver.deliveries()) == 1


def test_a_receiver_answering_500_twice_then_200_is_tried_three_times(hooked, hook_worker, webhook_receiver):
    webhook_receiver.script(500, 500, 200)
    task_id = hooked.generate(hooked.article(in_article=0))
    hooked.finished(task_id)
    [row] = settled(hooked)
    assert (row["state"], row["attempts"], row["status_code"], row["error"]) == ("delivered", 3, 200, None)
    received = webhook_receiver.deliveries()
    assert len(received) == 3
    assert {r.headers["X-Igny8-Delivery"] for r in received} == {row["delivery"]}  # one delivery, three tries
    assert len({r.body for r in received}) == 1 and all(verify(SECRET, r.body, r.headers["X-Igny8-Signature"])
                                                         for r in received)


def test_a_redirect_is_not_followed_and_counts_as_a_failure(hooked, hook_worker, webhook_receiver):
    webhook_receiver.script(302, 200)
    hooked.finished(hooked.generate(hooked.article(in_article=0)))
    [row] = settled(hooked)
    assert (row["state"], row["attempts"], row["status_code"]) == ("delivered", 2, 200)
    assert [r.path for r in webhook_receiver.deliveries()] == ["/hook", "/hook"]


def test_a_receiver_that_never_answers_is_retried_then_failed(hooked, hook_worker, webhook_receiver):
    webhook_receiver.script(*["hang"] * 10)
    task_id = hooked.generate(hooked.article(in_article=0))
    hooked.finished(task_id)
    [row] = settled(hooked, timeout=60)
    assert (row["state"], row["attempts"], row["status_code"]) == ("failed", 6, None)
    assert row["error"] == "No answer within 1 s."
    assert len(webhook_receiver.deliveries()) == 6


@pytest.mark.parametrize("url, says", [
    ("https://127.0.0.1/hook", "private or local address"),
    ("https://localhost:8443/hook", "private or local address"),
    ("https://169.254.169.254/latest/meta-data", "private or local address"),
    ("https://[::1]/hook", "private or local address"),
    ("https://10.1.2.3/hook", "private or local address"),
    ("http://example.com/hook", "plain http"),
    ("ftp://example.com/hook", "only https"),
    ("https://user:pw@example.com/hook", "credentials"),
    ("https://no-such-host.invalid/hook", "could not be found"),
    ("not a url", "printable characters"),
])
def test_a_refused_url_answers_400_and_saves_nothing(app, writer, url, says):
    response = writer.client.put(WEBHOOK, json={"url": url, "secret": SECRET}, headers=writer.headers)
    assert response.status_code == 400 and response.json["success"] is False
    assert says in response.json["errors"]["url"]
    assert writer.client.get(WEBHOOK, headers=writer.headers).json == {"success": True, "configured": False,
                                                                        "url": None}
    with app.app_context():
        assert db.session.scalar(select(IntegrationSettings).filter_by(integration_type="webhook")) is None


@pytest.mark.parametrize("body, fields", [
    ({"url": "https://example.com/hook"}, {"url", "secret"}),  # example.com resolves nowhere here, and no secret
    ({"secret": SECRET}, {"url"}),
    ({"url": "https://127.0.0.1/", "secret": "short"}, {"url", "secret"}),
    ({"url": 5, "secret": ["x"], "extra": 1}, {"url", "secret", "extra"}),
    (["url"], {"body"}),
])
def test_bad_webhook_bodies_answer_400_per_field(writer, body, fields):
    response = writer.client.put(WEBHOOK, json=body, headers=writer.headers)
    assert response.status_code == 400 and set(response.json["errors"]) >= fields


def test_a_url_refused_at_delivery_is_not_called(app, hooked, hook_worker, webhook_receiver):
    """DNS may change after the save: every delivery vets the URL again. Here the stored URL now
    points at a private address (as a changed DNS answer would), so nothing is sent."""
    with app.app_context():
        row = db.session.scalar(select(IntegrationSettings).filter_by(integration_type="webhook"))
        row.config = {"url": f"http://127.0.0.2:{webhook_receiver.port}/hook"}  # loopback, not the listed host
        db.session.commit()
    hooked.finished(hooked.generate(hooked.article(in_article=0)))
    [row] = settled(hooked)
    assert (row["state"], row["attempts"], row["status_code"]) == ("failed", 1, None)
    assert "plain http to 127.0.0.2 is not allowed" in row["error"]
    assert webhook_receiver.connection_count == 0
    # https to the same private address: refused for the address (after resolution), not the scheme.
    with app.app_context():
        row = db.session.scalar(select(IntegrationSettings).filter_by(integration_type="webhook"))
        row.config = {"url": f"https://127.0.0.2:{webhook_receiver.port}/hook"}
        db.session.commit()
    hooked.finished(hooked.generate(hooked.article(in_article=0, title="Again")))
    row = settled(hooked, count=2)[0]
    assert (row["state"], row["attempts"]) == ("failed", 1) and "private or local address" in row["error"]
    assert webhook_receiver.connection_count == 0


def test_every_way_a_task_ends_is_announced_once(app, hooked, hook_worker, webhook_receiver):
    """Cancelled before it started (the web request ends it) and failed by the sweep (a dead
    worker): each gives one task.finished, sent by a worker."""
    hook_worker.stop()  # nothing runs the tasks now
    cancelled = hooked.generate(hooked.article(in_article=0, title="Cancelled"))
    assert hooked.cancel(cancelled).status_code == 202
    dead = hooked.generate(hooked.article(in_article=0, title="Dead worker"))
    with app.app_context():
        fail_task(db.session.get(GenerationTask, dead))  # what the sweep does to a dead worker's task
        fail_task(db.session.get(GenerationTask, dead))  # twice: still one announcement
        db.session.remove()
    assert webhook_receiver.deliveries() == []  # never inside the request or sweep that ended it
    hooked_worker = hook_worker.__class__(hook_worker.env, hook_worker.log_path).start()
    try:
        rows = settled(hooked, count=2)
    finally:
        hooked_worker.stop()
    bodies = {json.loads(r.body)["data"]["task_id"]: json.loads(r.body)["data"] for r in webhook_receiver.deliveries()}
    assert {row["state"] for row in rows} == {"delivered"} and set(bodies) == {cancelled, dead}
    assert (bodies[cancelled]["outcome"], bodies[cancelled]["cancelled"]) == ("cancelled", True)
    assert (bodies[dead]["state"], bodies[dead]["outcome"]) == ("FAILURE", "failed")


def test_an_account_without_a_webhook_writes_no_delivery(app, writer, worker):
    writer.configure(provider="local", model="placeholder")
    assert writer.finished(writer.generate(writer.article(in_article=0)))["state"] == "SUCCESS"
    with app.app_context():
        assert db.session.scalars(select(WebhookDelivery)).all() == []
    assert deliveries(writer) == []


def test_the_secret_never_leaves_the_server(app, hooked, hook_worker, webhook_receiver, capfd):
    hooked.finished(hooked.generate(hooked.article(in_article=0)))
    settled(hooked)
    assert hooked.login().status_code == 302
    answers = [hooked.client.get(WEBHOOK, headers=hooked.headers),
               hooked.client.get(DELIVERIES, headers=hooked.headers),
               hooked.client.get("/settings/integrations"), hooked.client.get("/api/v1/openapi.json")]
    page = answers[2].get_data(as_text=True)
    assert "secret set" in page and 'id="webhook-secret"' in page
    # Saving through the form (with its CSRF token) keeps the secret when its field is left empty.
    saved = hooked.client.post("/settings/integrations/webhook", data={"csrf_token": hooked.csrf,
                                                                       "url": webhook_receiver.url("/other")})
    assert saved.status_code == 302
    assert hooked.client.post("/settings/integrations/webhook", data={"url": "https://127.0.0.1/"}).status_code == 400
    refused = hooked.client.post("/settings/integrations/webhook", data={"csrf_token": hooked.csrf,
                                                                         "url": "https://127.0.0.1/x"})
    assert refused.status_code == 400 and "private or local address" in refused.get_data(as_text=True)
    answers.append(refused)
    assert hooked.client.get(WEBHOOK, headers=hooked.headers).json["configured"] is True
    for response in answers:
        assert SECRET not in response.get_data(as_text=True)
    logs = capfd.readouterr()
    assert SECRET not in logs.out + logs.err
    assert SECRET not in hook_worker.output()
    assert "webhook_delivered" in hook_worker.output()
    with app.app_context():
        stored = db.session.scalar(select(IntegrationSettings).filter_by(integration_type="webhook"))
        assert stored.api_key_encrypted and SECRET not in stored.api_key_encrypted
        assert SECRET not in json.dumps(stored.config)


def test_clearing_the_webhook_stops_deliveries(app, hooked, hook_worker, webhook_receiver):
    cleared = hooked.client.put(WEBHOOK, json={"url": None}, headers=hooked.headers)
    assert cleared.status_code == 200 and cleared.json == {"success": True, "configured": False, "url": None}
    hooked.finished(hooked.generate(hooked.article(in_article=0)))
    assert deliveries(hooked) == [] and webhook_receiver.deliveries() == []


def test_deliveries_are_the_accounts_own_newest_first_and_paged(app, hooked, hook_worker, webhook_receiver,
                                                                writer_for, globex):
    first = hooked.generate(hooked.article(in_article=0, title="First"))
    hooked.finished(first)
    second = hooked.generate(hooked.article(in_article=0, title="Second"))
    hooked.finished(second)
    rows = settled(hooked, count=2)
    received = {r.headers["X-Igny8-Delivery"]: json.loads(r.body)["data"]["task_id"]
                for r in webhook_receiver.deliveries()}
    assert [received[row["delivery"]] for row in rows] == [second, first]
    paged = hooked.client.get(f"{DELIVERIES}?per_page=1&page=2", headers=hooked.headers).json
    assert (paged["total"], paged["page"]) == (2, 2)
    assert [r["delivery"] for r in paged["deliveries"]] == [rows[1]["delivery"]]
    for bad in ("page=0", "per_page=101", "page=x", "per_page=-1"):
        response = hooked.client.get(f"{DELIVERIES}?{bad}", headers=hooked.headers)
        assert response.status_code == 400 and response.json["error"]
    other = writer_for(globex)
    assert deliveries(other) == []
    assert other.client.get(WEBHOOK, headers=other.headers).json == {"success": True, "configured": False, "url": None}
    assert other.client.put(WEBHOOK, json={"url": None}, headers=other.headers).status_code == 200
    assert hooked.client.get(WEBHOOK, headers=hooked.headers).json["configured"] is True


def test_a_finished_run_is_announced_once_with_its_summary(hooked, hook_worker, webhook_receiver):
    contents = [hooked.article(in_article=1, title=f"Run article {i}") for i in range(2)]
    run = hooked.client.post("/api/v1/writer/images/generate_bulk/", json={"content_ids": [c["id"] for c in contents]},
                             headers=hooked.headers)
    assert run.status_code == 202, run.json
    rows = settled(hooked, count=3, timeout=60)  # two task.finished and one run.finished
    assert sorted(row["event"] for row in rows) == ["run.finished", "task.finished", "task.finished"]
    assert all(row["state"] == "delivered" for row in rows)
    [body] = [json.loads(d.body) for d in webhook_receiver.deliveries() if d.headers["X-Igny8-Event"] == "run.finished"]
    data = body["data"]
    assert (data["run_id"], data["state"], data["articles"], data["images"], data["completed"], data["failed"]) == \
        (run.json["run_id"], "finished", 2, 4, 4, 0)
    assert "tasks" not in data and "success" not in data
