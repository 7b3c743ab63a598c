"""Bulk runs: generate_bulk, the run's summary, cancel and retry, the fair feeder (round-robin
across accounts, clicks before bulk work, re-feed after a lost feed) and the CLI, with a real
Redis, a real database and real worker processes."""

from __future__ import annotations

import time

import pytest
import requests
from flask import Flask

from igny8.extensions import db
from igny8.models import GenerationTask, Image, utcnow
from igny8.redis_client import get_redis, get_rq_redis
from igny8.tasks import scheduling
from igny8.tasks.jobs import BULK_QUEUE, reconcile_stuck_work
from tests.support.cli import run_cli
from tests.support.waiting import wait_for
from tests.test_metrics import scrape, stack, value  # noqa: F401 - stack: the metrics fixture (gunicorn)

BULK = "/api/v1/writer/images/generate_bulk/"


def run_url(run_id: str, action: str = "") -> str:
    return f"/api/v1/runs/{run_id}/{action}"


def bulk(writer, body):  # noqa: ANN001, ANN201
    return writer.client.post(BULK, json=body, headers=writer.headers)


def summary(writer, run_id: str) -> dict:  # noqa: ANN001
    response = writer.client.get(run_url(run_id), headers=writer.headers)
    assert response.status_code == 200, response.json
    return response.json


def run_finished(writer, run_id: str, timeout: float = 60) -> dict:  # noqa: ANN001
    return wait_for(lambda: (body := summary(writer, run_id))["state"] in ("finished", "cancelled") and body,
                    timeout=timeout, message=f"run {run_id} to end")


def no_image_stuck(app: Flask) -> bool:
    with app.app_context():
        return not db.session.scalar(db.select(db.func.count()).where(Image.status.in_(("queued", "processing"))))


def articles(writer, count: int, in_article: int = 1) -> list[dict]:  # noqa: ANN001
    return [writer.article(in_article=in_article, title=f"Article {i}") for i in range(count)]


def test_bulk_run_generates_every_article_and_skips_those_with_nothing_to_generate(writer, worker, app):
    writer.configure(provider="local", model="placeholder", max_in_article_images=1)
    contents = articles(writer, 3)
    done = writer.write("No prompts at all")
    response = bulk(writer, {"content_ids": [c["id"] for c in contents] + [done["id"]]})
    assert response.status_code == 202, response.json
    body = response.json
    assert body["success"] is True and len(body["run_id"]) == 32
    assert [t["content_id"] for t in body["tasks"]] == [c["id"] for c in contents]
    assert all(t["total_images"] == 2 for t in body["tasks"]) and body["total_images"] == 6
    assert [s["content_id"] for s in body["skipped"]] == [done["id"]]
    final = run_finished(writer, body["run_id"])
    assert final["state"] == "finished" and final["completed"] == 6 and final["failed"] == 0
    assert final["articles"] == 3 and final["articles_done"] == 3 and final["eta"] is None
    assert [row["outcome"] for row in final["tasks"]] == ["generated"] * 3
    progress = writer.progress(body["tasks"][0]["task_id"])
    assert progress["meta"]["run_id"] == body["run_id"]
    assert all(img["status"] == "generated" for c in contents for img in writer.images(c))
    again = bulk(writer, {"all_missing": True})
    assert again.status_code == 409 and "Nothing to generate" in again.json["error"]


@pytest.mark.parametrize("body, words", [
    ([1, 2], "JSON object"), ({}, "either"), ({"content_ids": []}, "1 to"), ({"content_ids": ["1"]}, "whole numbers"),
    ({"content_ids": [1], "all_missing": True}, "either"), ({"all_missing": "yes"}, "true or false"),
    ({"all_missing": 1}, "true or false"), ({"content_ids": [1], "all_missing": 0}, "true or false"),
    ({"content_ids": [1], "extra": 1}, "Unknown field"), ({"content_ids": [True]}, "whole numbers"),
])
def test_malformed_bulk_requests_answer_400(writer, body, words):
    response = bulk(writer, body)
    assert response.status_code == 400 and words in response.json["error"]


def test_another_accounts_articles_and_runs_answer_404(writer, writer_for, globex, app):
    theirs = writer_for(globex)
    theirs.configure(provider="local", model="placeholder")
    content = theirs.article(in_article=1)
    mine = writer.article(in_article=1)
    response = bulk(writer, {"content_ids": [mine["id"], content["id"]]})
    assert response.status_code == 404 and str(content["id"]) in response.json["error"]
    assert no_image_stuck(app), "a refused request claims nothing"
    run_id = bulk(theirs, {"content_ids": [content["id"]]}).json["run_id"]
    for method, action in (("get", ""), ("post", "cancel"), ("post", "retry")):
        answer = getattr(writer.client, method)(run_url(run_id, action), headers=writer.headers)
        assert answer.status_code == 404 and answer.json["error"] == "No such run."
    assert summary(theirs, run_id)["state"] == "queued"


def test_nothing_to_generate_answers_409(writer):
    empty = writer.write("Only text")
    response = bulk(writer, {"content_ids": [empty["id"]]})
    assert response.status_code == 409 and "Nothing to generate" in response.json["error"]
    assert bulk(writer, {"all_missing": True}).status_code == 409


def test_cancel_mid_run_releases_the_waiting_tasks_and_strands_nothing(writer, start_worker, app):
    writer.configure(provider="local", model="placeholder", max_in_article_images=1)
    start_worker(LOCAL_PROVIDER_LATENCY="0.3")
    contents = articles(writer, 6)
    run_id = bulk(writer, {"content_ids": [c["id"] for c in contents]}).json["run_id"]
    wait_for(lambda: summary(writer, run_id)["completed"] >= 1, timeout=30, message="the first image")
    cancelled = writer.client.post(run_url(run_id, "cancel"), headers=writer.headers)
    assert cancelled.status_code == 200 and cancelled.json["cancelled"] is True
    final = run_finished(writer, run_id)
    assert final["state"] == "cancelled" and final["completed"] < 12
    assert "cancelled" in [row["outcome"] for row in final["tasks"]]
    assert wait_for(lambda: no_image_stuck(app), timeout=20, message="no image queued or processing")
    statuses = {img["status"] for c in contents for img in writer.images(c)}
    assert statuses <= {"generated", "pending"} and "pending" in statuses
    again = writer.client.post(run_url(run_id, "cancel"), headers=writer.headers)
    assert again.status_code == 409 and "already finished" in again.json["error"]


def test_retry_requeues_the_failed_images_as_a_new_run(writer, fake_openai, start_worker):
    writer.save_api_key("openai", "sk-test-0123456789")
    writer.configure(provider="openai", model="gpt-image-2", max_in_article_images=1)
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    good = writer.write("Fine", featured_prompt="A loaf", in_article_prompts=["A knife"])
    bad = writer.write("Broken", featured_prompt="A loaf [provider-fail:content-policy]", in_article_prompts=["A bowl"])
    run_id = bulk(writer, {"content_ids": [good["id"], bad["id"]]}).json["run_id"]
    final = run_finished(writer, run_id)
    assert final["completed"] == 3 and final["failed"] == 1
    retried = writer.client.post(run_url(run_id, "retry"), headers=writer.headers)
    assert retried.status_code == 202, retried.json
    assert retried.json["run_id"] != run_id and retried.json["total_images"] == 1
    assert [t["content_id"] for t in retried.json["tasks"]] == [bad["id"]]
    assert run_finished(writer, retried.json["run_id"])["failed"] == 1


def _started_order(app: Flask, run_ids: list[str]) -> list[tuple[str, int]]:
    with app.app_context():
        tasks = db.session.scalars(db.select(GenerationTask).where(GenerationTask.run_id.in_(run_ids))
                                   .order_by(GenerationTask.started_at)).all()
        return [(task.run_id, task.content_id) for task in tasks]


def test_feeder_takes_bulk_tasks_round_robin_across_accounts(writer, writer_for, globex, start_worker, app):
    theirs = writer_for(globex)
    for who in (writer, theirs):
        who.configure(provider="local", model="placeholder", max_in_article_images=0)
    mine = [writer.article(in_article=0, title=f"A{i}") for i in range(4)]
    their = [theirs.article(in_article=0, title=f"B{i}") for i in range(2)]
    run_a = bulk(writer, {"content_ids": [c["id"] for c in mine]}).json["run_id"]
    run_b = bulk(theirs, {"content_ids": [c["id"] for c in their]}).json["run_id"]
    with app.app_context():
        assert get_rq_redis().llen(f"rq:queue:{BULK_QUEUE}") == 1, "the RQ queue holds one job per worker slot"
        assert get_redis().scard(scheduling.WAITING) == 5
    start_worker()
    run_finished(writer, run_a)
    run_finished(theirs, run_b)
    a, b = ([c["id"] for c in mine], [c["id"] for c in their])
    # A's first task was fed when its run was created; from then on the accounts take turns.
    assert _started_order(app, [run_a, run_b]) == [(run_a, a[0]), (run_a, a[1]), (run_b, b[0]), (run_a, a[2]),
                                                   (run_b, b[1]), (run_a, a[3])]


def test_a_click_overtakes_a_bulk_backlog(writer, writer_for, globex, start_worker, app):
    theirs = writer_for(globex)
    writer.configure(provider="local", model="placeholder", max_in_article_images=1)
    theirs.configure(provider="local", model="placeholder", max_in_article_images=1)
    start_worker(LOCAL_PROVIDER_LATENCY="0.2")
    backlog = articles(writer, 15)
    run_id = bulk(writer, {"content_ids": [c["id"] for c in backlog]}).json["run_id"]
    wait_for(lambda: summary(writer, run_id)["state"] == "running", timeout=20, message="the bulk run to start")
    clicked = time.monotonic()
    task_id = theirs.generate(theirs.article(in_article=1))
    assert theirs.finished(task_id, timeout=30)["state"] == "SUCCESS"
    waited = time.monotonic() - clicked
    status = summary(writer, run_id)
    assert status["state"] == "running" and status["remaining"] >= 10, "the click did not wait for the backlog"
    assert waited < 5
    with app.app_context():
        task = db.session.get(GenerationTask, task_id)
        assert task.kind == "interactive" and (task.started_at - task.created_at).total_seconds() < 2
    writer.client.post(run_url(run_id, "cancel"), headers=writer.headers)
    run_finished(writer, run_id)


def test_a_lost_feed_is_fed_again_by_the_sweep(writer, start_worker, app):
    writer.configure(provider="local", model="placeholder", max_in_article_images=0)
    contents = [writer.article(in_article=0, title=f"T{i}") for i in range(3)]
    run_id = bulk(writer, {"content_ids": [c["id"] for c in contents]}).json["run_id"]
    with app.app_context():
        get_redis().flushdb()  # a Redis restart without persistence: the line and the RQ job are gone
        assert get_rq_redis().llen(f"rq:queue:{BULK_QUEUE}") == 0
        # The task that had been fed lost its RQ job: once older than the grace, it goes back in line.
        db.session.execute(db.update(GenerationTask).where(GenerationTask.enqueued_at.is_not(None))
                           .values(enqueued_at=utcnow() - scheduling.LOST_GRACE * 2))
        db.session.commit()
        assert scheduling.refeed() == 3
        assert get_rq_redis().llen(f"rq:queue:{BULK_QUEUE}") == 1 and scheduling.refeed() == 0
    start_worker()
    final = run_finished(writer, run_id)
    assert final["completed"] == 3 and final["state"] == "finished"
    with app.app_context():
        assert reconcile_stuck_work()["failed_tasks"] == []


def test_cli_bulk_shows_one_overall_bar_until_the_run_ends(writer, worker, worker_env, app):
    writer.configure(provider="local", model="placeholder", max_in_article_images=1)
    contents = articles(writer, 3)
    done = writer.write("Text only")
    result = run_cli(worker_env, "images", "bulk", "--all-missing", "--account", str(writer.who["account_id"]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 article(s), 6 image(s)" in result.stdout
    assert "6/6 images (0 failed), 3/3 articles" in result.stdout and "finished" in result.stdout
    run_id = result.stdout.split()[1].rstrip(":")
    watched = run_cli(worker_env, "images", "run", run_id)
    assert watched.returncode == 0 and f"Run {run_id} finished: 6 generated, 0 failed" in watched.stdout
    nothing = run_cli(worker_env, "images", "bulk", "--content-id", str(done["id"]), "--content-id",
                      str(contents[0]["id"]))
    assert nothing.returncode == 1 and "Nothing to generate" in nothing.stderr
    usage = run_cli(worker_env, "images", "bulk", "--all-missing")
    assert usage.returncode == 2 and "--account" in usage.stderr


def test_images_page_confirms_and_creates_a_run_and_the_run_page_shows_it(writer, app):
    writer.configure(provider="local", model="placeholder", max_in_article_images=1)
    contents = articles(writer, 3)
    writer.article(in_article=0, title="<script>alert(1)</script>")
    assert writer.login().status_code == 302
    page = writer.client.get("/writer/images").get_data(as_text=True)
    assert page.count('class="bulk-check"') == 4 and "Select all 4 matching the filter" in page
    assert "<script>alert(1)</script>" not in page
    headers = {"X-CSRFToken": writer.csrf, "HX-Request": "true"}
    picked = {"scope": "selected", "content_ids": [str(c["id"]) for c in contents[:2]]}
    dialog = writer.client.post("/writer/runs/confirm", data=picked, headers=headers).get_data(as_text=True)
    assert "Generate <strong>4 images</strong>" in dialog and "<strong>2 articles</strong>" in dialog
    everything = writer.client.post("/writer/runs/confirm", data={"scope": "missing"}, headers=headers)
    assert "<strong>7 images</strong>" in everything.get_data(as_text=True)
    empty = writer.client.post("/writer/runs/confirm", data={"scope": "selected"}, headers=headers)
    assert "Select at least one article" in empty.get_data(as_text=True)
    refused = writer.client.post("/writer/runs/confirm", data=picked, headers={"HX-Request": "true"})
    assert refused.status_code == 400, "no CSRF token, no run"
    created = writer.client.post("/writer/runs/", data=picked, headers=headers)
    assert created.status_code == 204 and created.headers["HX-Redirect"].startswith("/writer/runs/")
    run_page = writer.client.get(created.headers["HX-Redirect"]).get_data(as_text=True)
    assert "0 of 4 images" in run_page and "Article 0" in run_page
    assert 'hx-trigger="igny8:run-moved, every 10s"' in run_page and 'data-run-id="' in run_page
    run_id = created.headers["HX-Redirect"].rsplit("/", 1)[1]
    cancelled = writer.client.post(f"/writer/runs/{run_id}/cancel", headers=headers).get_data(as_text=True)
    assert 'data-run-state="cancelled"' in cancelled and "igny8:run-moved" not in cancelled
    assert no_image_stuck(app)


def test_a_bulk_task_steps_aside_between_images_for_a_click_and_resumes(writer, writer_for, globex, start_worker,
                                                                         app):
    theirs = writer_for(globex)
    writer.configure(provider="local", model="placeholder", max_in_article_images=5)
    theirs.configure(provider="local", model="placeholder", max_in_article_images=0)
    start_worker(LOCAL_PROVIDER_LATENCY="0.4")
    long_one = writer.article(in_article=5, title="Six images")
    run_id = bulk(writer, {"content_ids": [long_one["id"]]}).json["run_id"]
    wait_for(lambda: summary(writer, run_id)["tasks"][0]["completed"] >= 1, timeout=20, message="the first image")
    task_id = theirs.generate(theirs.article(in_article=0))
    assert theirs.finished(task_id, timeout=30)["state"] == "SUCCESS"
    with app.app_context():
        click = db.session.get(GenerationTask, task_id)
        bulk_task = db.session.scalar(db.select(GenerationTask).filter_by(run_id=run_id))
        assert bulk_task.finished_at is None or click.started_at < bulk_task.finished_at, "the click went first"
    final = run_finished(writer, run_id)
    assert final["completed"] == 6 and final["failed"] == 0 and final["tasks"][0]["outcome"] == "generated"
    progress = writer.progress(final["tasks"][0]["task_id"])
    assert progress["state"] == "SUCCESS" and progress["meta"]["completed"] == 6
    assert [r["status"] for r in progress["meta"]["results"]] == ["completed"] * 6
    assert no_image_stuck(app)


def test_a_click_on_an_article_waiting_in_a_run_runs_its_task_now(writer, app):
    writer.configure(provider="local", model="placeholder", max_in_article_images=0)
    contents = [writer.article(in_article=0, title=f"W{i}") for i in range(3)]
    run = bulk(writer, {"content_ids": [c["id"] for c in contents]}).json
    waiting = run["tasks"][2]
    answer = writer.click_generate(contents[2])
    assert answer.status_code == 202 and answer.json["existing"] is True
    assert answer.json["task_id"] == waiting["task_id"]
    with app.app_context():
        task = db.session.get(GenerationTask, waiting["task_id"])
        assert task.kind == "interactive" and task.run_id == run["run_id"] and task.enqueued_at is not None
        assert get_rq_redis().llen("rq:queue:images") == 1
        assert not get_redis().sismember(scheduling.WAITING, waiting["task_id"]), "the feeder will not take it too"


def test_batch_wait_metric_counts_bulk_tasks_as_bulk(stack, acme, start_worker, writer):  # noqa: F811
    web, env = stack
    writer.configure(provider="local", model="placeholder", max_in_article_images=0)
    contents = [writer.article(in_article=0, title=f"M{i}") for i in range(2)]
    run = requests.post(f"{web.url}{BULK}", headers=acme["headers"], timeout=10,
                        json={"content_ids": [c["id"] for c in contents]}).json()
    assert value(scrape(web), "igny8_queue_length", queue=BULK_QUEUE) == 1, "one job per worker slot, not two"
    start_worker(**{k: env[k] for k in ("PROMETHEUS_MULTIPROC_DIR", "METRICS_TOKEN")})
    run_finished(writer, run["run_id"])
    samples = scrape(web)
    assert value(samples, "igny8_batch_wait_seconds_count", kind="bulk") == 2
    assert value(samples, "igny8_batch_wait_seconds_count", kind="interactive") in (None, 0)
