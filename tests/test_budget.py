"""Spend control (issue 17): the dry run writes nothing, the monthly budget is held atomically
(reserve at enqueue, settle with the real cost, release on failure, cancel and the sweep) so that
50 clicks at once never overspend, and the budget setting is validated."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from igny8 import create_app
from igny8.extensions import db
from igny8.models import GenerationTask, Image, SpendEntry, SpendReservation
from igny8.redis_client import close_redis
from igny8.spend.prices import PriceFileError
from igny8.tasks.reconcile import fail_task
from tests.support.accounts import Accounts
from tests.support.cli import run_cli
from tests.support.waiting import wait_for
from tests.support.writer import GENERATE, Writer

KEY = "sk-budget-test-0123456789"
# gpt-image-2, medium: featured 1536x1024 = $0.063, in-article 1024x1024 = $0.042 (+ $0.004 per partial)
FEATURED, IN_ARTICLE = 0.063, 0.042


def _openai(writer: Writer, **settings) -> None:  # noqa: ANN003
    writer.save_api_key("openai", KEY)
    writer.configure(provider="openai", model="gpt-image-2", quality="medium", partial_images=0, **settings)


def _count(app, model, **where) -> int:  # noqa: ANN001
    with app.app_context():
        try:
            return db.session.scalar(select(func.count()).select_from(model).filter_by(**where))
        finally:
            db.session.remove()


def _reserved(app, account_id: int) -> float:  # noqa: ANN001
    with app.app_context():
        try:
            return db.session.scalar(select(func.coalesce(func.sum(SpendReservation.amount), 0.0))
                                     .filter_by(account_id=account_id))
        finally:
            db.session.remove()


def _dry(writer: Writer, content: dict) -> dict:
    response = writer.click_generate(body={"content_id": content["id"], "dry_run": True})
    assert response.status_code == 200, response.json
    return response.json


# ---------------------------------------------------------------- the estimate

def test_a_dry_run_answers_the_estimate_and_writes_nothing(app, writer, redis):
    _openai(writer, monthly_budget=5, max_in_article_images=2)
    content = writer.article(in_article=3)
    keys_before = redis.dbsize()
    body = _dry(writer, content)
    assert body["success"] is True and [item["type"] for item in body["queue"]] == ["featured", "in_article",
                                                                                    "in_article"]
    assert body["estimated_cost"] == pytest.approx(FEATURED + 2 * IN_ARTICLE)
    assert [item["estimated_cost"] for item in body["queue"]] == pytest.approx([FEATURED, IN_ARTICLE, IN_ARTICLE])
    assert body["budget"] == {"monthly": 5.0, "spent": 0.0, "reserved": 0.0, "remaining": 5.0}
    assert body["within_budget"] is True and "1 in-article image is left out" in body["note"]
    assert redis.dbsize() == keys_before, "no Redis key"
    assert not redis.keys("rq:*"), "no RQ job (nor queue)"
    assert _count(app, GenerationTask) == 0 and _count(app, SpendReservation) == 0
    assert {row["status"] for row in writer.images(content)} == {"pending"}, "no image claimed"


def test_a_dry_run_counts_partial_previews_and_flags_a_non_boolean(writer):
    _openai(writer, max_in_article_images=0)
    writer.configure(partial_images=2)
    content = writer.article(in_article=1)
    assert _dry(writer, content)["estimated_cost"] == pytest.approx(FEATURED + 2 * 0.004)
    bad = writer.click_generate(body={"content_id": content["id"], "dry_run": "yes"})
    assert bad.status_code == 400 and bad.json["error"] == "dry_run must be true or false."


# ---------------------------------------------------------------- the budget

def test_over_the_budget_answers_402_and_queues_nothing(app, writer, redis):
    _openai(writer, monthly_budget=0.1, max_in_article_images=2)
    content = writer.article(in_article=2)
    keys_before = redis.dbsize()
    response = writer.click_generate(content)
    assert response.status_code == 402 and response.json["success"] is False
    assert "only $0.10 of this month's $0.10 budget remains" in response.json["error"]
    assert response.json["budget"] == {"monthly": 0.1, "spent": 0.0, "reserved": 0.0, "remaining": 0.1}
    assert _count(app, GenerationTask) == 0 and _count(app, SpendReservation) == 0
    assert {row["status"] for row in writer.images(content)} == {"pending"}
    assert redis.dbsize() == keys_before
    assert _dry(writer, content)["within_budget"] is False


def test_fifty_simultaneous_clicks_pay_for_exactly_three_images(app, acme, live_server, fake_openai, start_worker,
                                                                  client):
    writer = Writer(client, acme)
    _openai(writer, monthly_budget=round(3 * FEATURED + 0.01, 4), max_in_article_images=0)
    contents = [writer.article(in_article=0, title=f"Article {i}") for i in range(50)]

    def click(content: dict) -> requests.Response:
        return requests.post(live_server.url + GENERATE, json={"content_id": content["id"]}, headers=acme["headers"],
                             timeout=60)

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(click, contents))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses.count(202) == 3 and statuses.count(402) == 47, statuses
    refused = next(answer.json() for answer in answers if answer.status_code == 402)
    assert refused["budget"]["remaining"] < FEATURED and refused["success"] is False
    assert _reserved(app, acme["account_id"]) == pytest.approx(3 * FEATURED)
    assert _count(app, Image, status="queued") == 3 and _count(app, GenerationTask) == 3

    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    for answer in answers:
        if answer.status_code == 202:
            assert writer.finished(answer.json()["task_id"])["result"]["outcome"] == "generated"
    assert fake_openai.call_count == 3, "exactly three images were paid for"
    budget = _dry(writer, contents[0])["budget"]
    assert budget["spent"] == pytest.approx(3 * FEATURED) and budget["reserved"] == 0.0
    assert budget["remaining"] == pytest.approx(0.01)
    assert _count(app, Image, status="generated") == 3 and _count(app, Image, status="pending") == 47


def test_a_failed_image_releases_its_reservation(app, acme, writer, fake_openai, start_worker):
    _openai(writer, monthly_budget=1, max_in_article_images=1)
    content = writer.write("Failing", "A loaf [provider-fail:content-policy]", ["Crumb"])
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    result = writer.finished(writer.generate(content))["result"]
    assert result["outcome"] == "partial"
    assert _reserved(app, acme["account_id"]) == 0.0 and _count(app, SpendReservation) == 0
    assert _count(app, SpendEntry, outcome="failed") == 1 and _count(app, SpendEntry, outcome="generated") == 1
    budget = _dry(writer, content)["budget"]
    assert budget["spent"] == pytest.approx(IN_ARTICLE) and budget["remaining"] == pytest.approx(1 - IN_ARTICLE)


def test_cancelling_a_batch_that_has_not_started_releases_it(app, acme, writer):
    _openai(writer, monthly_budget=1, max_in_article_images=2)
    content = writer.article(in_article=2)
    task_id = writer.generate(content)  # no worker: the task waits
    assert _reserved(app, acme["account_id"]) == pytest.approx(FEATURED + 2 * IN_ARTICLE)
    assert writer.cancel(task_id).status_code == 202
    assert _reserved(app, acme["account_id"]) == 0.0
    assert _dry(writer, content)["budget"] == {"monthly": 1.0, "spent": 0.0, "reserved": 0.0, "remaining": 1.0}


def test_cancelling_a_running_batch_releases_what_it_did_not_make(app, acme, writer, fake_openai, start_worker):
    _openai(writer, monthly_budget=1, max_in_article_images=3)
    fake_openai.latency = 0.6
    content = writer.article(in_article=3)
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    task_id = writer.generate(content)
    # An image in flight (its call made: it finishes and is paid), not only a started batch.
    wait_for(lambda: any(item["status"] == "processing" for item in writer.progress(task_id)["meta"]["queue"]),
             message="an image in flight")
    assert writer.cancel(task_id).status_code == 202
    result = writer.finished(task_id)["result"]
    assert result["outcome"] == "cancelled"
    assert _reserved(app, acme["account_id"]) == 0.0
    paid = sum(row["cost"] for row in writer.images(content))
    assert 0 < paid < FEATURED + 3 * IN_ARTICLE
    assert _dry(writer, content)["budget"]["spent"] == pytest.approx(paid)


def test_the_sweep_releases_a_task_its_dead_worker_left(app, acme, writer):
    _openai(writer, monthly_budget=1, max_in_article_images=1)
    task_id = writer.generate(writer.article(in_article=1))
    assert _reserved(app, acme["account_id"]) > 0
    with app.app_context():
        fail_task(db.session.get(GenerationTask, task_id))
        db.session.remove()
    assert _reserved(app, acme["account_id"]) == 0.0


# ---------------------------------------------------------------- the setting

@pytest.mark.parametrize("value", [-1, "10", True, [5], 2_000_000, math.inf])
def test_a_bad_monthly_budget_is_refused_per_field(writer, value):
    response = writer.client.put("/api/v1/system/integrations/image_generation/", json={"monthly_budget": value},
                                 headers=writer.headers)
    assert response.status_code == 400 and "monthly_budget" in response.json["errors"]
    assert "null for no budget" in response.json["errors"]["monthly_budget"]


@pytest.mark.parametrize("value", [0, 12.5, None])
def test_a_monthly_budget_is_a_number_or_null(writer, value):
    writer.configure(monthly_budget=value)
    config = writer.client.get("/api/v1/system/integrations/image_generation/", headers=writer.headers).json["config"]
    assert config["monthly_budget"] == value


def test_the_settings_page_sets_and_clears_the_budget(client, auth, acme, writer):
    auth.login(acme["email"])
    form = {"csrf_token": auth.csrf, "provider": "local", "model": "placeholder", "image_type": "realistic",
            "max_in_article_images": "2", "image_format": "webp", "concurrency": "1", "desktop_enabled": "on"}
    page = client.get("/settings/integrations").get_data(as_text=True)
    assert 'id="monthly_budget"' in page
    bad = client.post("/settings/integrations/image_generation", data={**form, "monthly_budget": "-3"})
    assert bad.status_code == 400 and "null for no budget" in bad.get_data(as_text=True)
    assert writer.client.get("/api/v1/system/integrations/image_generation/").json["config"]["monthly_budget"] is None
    assert client.post("/settings/integrations/image_generation", data={**form, "monthly_budget": "25.5"},
                       follow_redirects=True).status_code == 200
    assert client.get("/api/v1/system/integrations/image_generation/").json["config"]["monthly_budget"] == 25.5
    client.post("/settings/integrations/image_generation", data={**form, "monthly_budget": ""})
    assert client.get("/api/v1/system/integrations/image_generation/").json["config"]["monthly_budget"] is None
    assert client.post("/settings/integrations/image_generation",
                       data={k: v for k, v in form.items() if k != "csrf_token"}).status_code == 400


def test_clicks_while_a_worker_settles_never_overspend_nor_deadlock(app, acme, live_server, fake_openai,
                                                                     start_worker, client):
    """Reservations (web) and settlements (worker) of one account interleave: every answer is a
    202 or a 402, and what was paid stays within the budget."""
    writer = Writer(client, acme)
    budget = round(5 * FEATURED + 0.001, 4)
    _openai(writer, monthly_budget=budget, max_in_article_images=0)
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    contents = [writer.article(in_article=0, title=f"Article {i}") for i in range(20)]

    def click(content: dict) -> requests.Response:
        return requests.post(live_server.url + GENERATE, json={"content_id": content["id"]}, headers=acme["headers"],
                             timeout=60)

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(click, contents))
    accepted = [answer.json()["task_id"] for answer in answers if answer.status_code == 202]
    assert sorted({answer.status_code for answer in answers}) == [202, 402] and len(accepted) == 5
    for task_id in accepted:
        writer.finished(task_id)
    assert fake_openai.call_count == 5
    spent = _dry(writer, contents[0])["budget"]
    assert spent["spent"] == pytest.approx(5 * FEATURED) and spent["spent"] <= budget and spent["reserved"] == 0


def test_the_cli_refuses_over_budget_with_the_message(app, writer, worker_env):
    _openai(writer, monthly_budget=0.05, max_in_article_images=0)
    content = writer.article(in_article=0)
    result = run_cli(worker_env, "images", "generate", "--content", str(content["id"]), "--no-wait")
    assert result.returncode == 1 and "budget remains; nothing was queued" in result.stderr
    assert "Traceback" not in result.stderr
    assert _count(app, GenerationTask) == 0 and {row["status"] for row in writer.images(content)} == {"pending"}


def test_crossing_80_percent_announces_budget_threshold_once(writer, fake_openai, start_worker):
    _openai(writer, monthly_budget=0.12, max_in_article_images=1)
    worker = start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    content = writer.article(in_article=1)
    writer.finished(writer.generate(content))  # 0.063 (52 %), then 0.105 (88 %)
    lines = [line for line in worker.output().splitlines() if "budget.threshold" in line]
    assert len(lines) == 1 and "threshold=0.8" in lines[0] and "spent=0.1050" in lines[0]


def test_prices_file_overrides_the_table_and_a_bad_one_stops_start_up(app_config, tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"prices": [{"provider": "openai", "model": "gpt-image-2", "size": "1536x1024",
                                              "quality": "medium", "usd": 0.5, "checked": "2026-12-06"}]}))
    app = create_app({**app_config, "PRICES_FILE": str(prices)})
    with app.app_context():
        db.create_all()
        who = Accounts(app).create("Priced")
        client = app.test_client()
        client.put("/api/v1/system/integrations/image_generation/", headers=who["headers"],
                   json={"provider": "openai", "model": "gpt-image-2", "partial_images": 0, "max_in_article_images": 1})
        content = client.post("/api/v1/writer/content/", headers=who["headers"],
                              json={"title": "Priced", "featured_prompt": "A", "in_article_prompts": ["B"]}).json
        body = client.post(GENERATE, json={"content_id": content["id"], "dry_run": True}, headers=who["headers"]).json
        assert body["estimated_cost"] == pytest.approx(0.5 + IN_ARTICLE), "the override, and the built-in rest"
        db.session.remove()
        if db.engine.url.get_backend_name() == "postgresql":
            db.drop_all()
        db.engine.dispose()
    close_redis(app)
    prices.write_text(json.dumps({"prices": [{"provider": "openai", "usd": "cheap"}]}))
    with pytest.raises(PriceFileError, match="price entry 0: usd must be a number"):
        create_app({**app_config, "PRICES_FILE": str(prices)})


def test_crossing_80_percent_sends_the_budget_threshold_webhook(app, writer, fake_openai, start_worker,
                                                                 webhook_receiver):
    app.config["ALLOWED_HTTP_HOSTS"] = (webhook_receiver.allowed_host,)
    _openai(writer, monthly_budget=0.12, max_in_article_images=1)
    saved = writer.client.put("/api/v1/system/integrations/webhook/", headers=writer.headers,
                              json={"url": webhook_receiver.url(), "secret": "whsec-budget-0123456789"})
    assert saved.status_code == 200, saved.json
    start_worker(OPENAI_BASE_URL=fake_openai.base_url, ALLOWED_HTTP_HOSTS=webhook_receiver.allowed_host)
    writer.finished(writer.generate(writer.article(in_article=1)))
    received = wait_for(lambda: [json.loads(d.body) for d in webhook_receiver.deliveries()
                                 if d.headers["X-Igny8-Event"] == "budget.threshold"],
                        timeout=30, message="the budget.threshold delivery")
    assert received == [{"event": "budget.threshold", "data": {"threshold": 0.8, "monthly": 0.12, "spent": 0.105}}]


# ---------------------------------------------------------------- bulk runs share the budget

BULK = "/api/v1/writer/images/generate_bulk/"


def test_a_bulk_dry_run_answers_its_estimate_and_writes_nothing(app, writer, redis):
    _openai(writer, monthly_budget=1.0, max_in_article_images=1)
    contents = [writer.article(in_article=1) for _ in range(3)]
    response = writer.client.post(BULK, json={"content_ids": [c["id"] for c in contents], "dry_run": True},
                                  headers=writer.headers)
    assert response.status_code == 200, response.json
    body = response.json
    assert (body["dry_run"], body["articles"], body["images"], body["skipped"]) == (True, 3, 6, 0)
    assert body["estimated_cost"] == pytest.approx(3 * (FEATURED + IN_ARTICLE))
    assert body["budget"] == {"monthly": 1.0, "spent": 0.0, "reserved": 0.0, "remaining": 1.0}
    assert body["within_budget"] is True
    assert _count(app, GenerationTask) == 0 and _count(app, SpendReservation) == 0
    assert {row["status"] for c in contents for row in writer.images(c)} == {"pending"}
    bad = writer.client.post(BULK, json={"all_missing": True, "dry_run": "yes"}, headers=writer.headers)
    assert bad.status_code == 400 and "dry_run" in bad.json["error"]


def test_a_bulk_run_over_the_budget_answers_402_and_queues_nothing(app, writer, redis):
    _openai(writer, monthly_budget=0.2, max_in_article_images=1)  # two articles' worth: 0.21
    contents = [writer.article(in_article=1) for _ in range(2)]
    response = writer.client.post(BULK, json={"content_ids": [c["id"] for c in contents]}, headers=writer.headers)
    assert response.status_code == 402, response.json
    assert response.json["budget"]["remaining"] == 0.2 and "nothing was queued" in response.json["error"]
    assert _count(app, GenerationTask) == 0 and _count(app, SpendReservation) == 0
    assert {row["status"] for c in contents for row in writer.images(c)} == {"pending"}
    one = writer.client.post(BULK, json={"content_ids": [contents[0]["id"]]}, headers=writer.headers)
    assert one.status_code == 202, one.json
    assert _reserved(app, writer.who["account_id"]) == pytest.approx(FEATURED + IN_ARTICLE)


def test_cancelling_a_bulk_run_releases_what_its_waiting_tasks_held(app, writer, redis):
    _openai(writer, monthly_budget=5.0, max_in_article_images=1)
    contents = [writer.article(in_article=1) for _ in range(4)]
    run = writer.client.post(BULK, json={"content_ids": [c["id"] for c in contents]}, headers=writer.headers).json
    assert _reserved(app, writer.who["account_id"]) == pytest.approx(4 * (FEATURED + IN_ARTICLE))
    cancelled = writer.client.post(f"/api/v1/runs/{run['run_id']}/cancel", headers=writer.headers)
    assert cancelled.status_code == 200, cancelled.json
    assert _reserved(app, writer.who["account_id"]) == 0
    assert {row["status"] for c in contents for row in writer.images(c)} == {"pending"}


def test_the_bulk_dialog_shows_the_estimate_and_refuses_a_run_over_the_budget(writer):
    _openai(writer, monthly_budget=0.2, max_in_article_images=1)
    contents = [writer.article(in_article=1) for _ in range(2)]
    assert writer.login().status_code == 302
    headers = {"X-CSRFToken": writer.csrf, "HX-Request": "true"}
    one = {"scope": "selected", "content_ids": [str(contents[0]["id"])]}
    dialog = writer.client.post("/writer/runs/confirm", data=one, headers=headers).get_data(as_text=True)
    assert "Estimated cost: <strong>$0.10</strong>" in dialog and "$0.20 of this month's $0.20 budget" in dialog
    assert "would exceed" not in dialog
    both = {"scope": "selected", "content_ids": [str(c["id"]) for c in contents]}
    dialog = writer.client.post("/writer/runs/confirm", data=both, headers=headers).get_data(as_text=True)
    assert "Estimated cost: <strong>$0.21</strong>" in dialog and "would exceed the month's budget" in dialog
    assert "disabled data-create-run" in dialog
    refused = writer.client.post("/writer/runs/", data=both, headers=headers).get_data(as_text=True)
    assert "nothing was queued" in refused and "data-bulk-error" in refused
