"""Spend safety and honest outcomes (issue 12): the in-article cap is per article, not per
click; a failed image is never a dead end (plain Generate, the list card's Retry, the CLI's
``images retry``); every finished task says how it went (``outcome``)."""

from __future__ import annotations

import json

from tests.support.cli import run_cli
from tests.support.streams import open_stream
from tests.support.waiting import wait_for
from tests.support.writer import Writer

KEY = "sk-spend-test-0123456789"


def _openai(writer: Writer, fake_openai, start_worker, **settings) -> None:  # noqa: ANN001, ANN003
    writer.save_api_key("openai", KEY)
    writer.configure(provider="openai", model="gpt-image-2", **settings)
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)


# ---------------------------------------------------------------- the cap is per article

def test_a_second_click_while_the_batch_runs_pays_for_nothing_more(writer, fake_openai, start_worker):
    _openai(writer, fake_openai, start_worker, max_in_article_images=4)
    fake_openai.latency = 0.4
    content = writer.article(in_article=5)
    first = writer.click_generate(content)
    assert first.status_code == 202 and len(first.json["queue"]) == 5  # featured + 4
    assert "1 in-article image is left out: max 4 in-article images per article" in first.json["note"]
    second = writer.click_generate(content)
    assert second.status_code == 202 and second.json["existing"] is True
    assert second.json["task_id"] == first.json["task_id"]
    assert writer.finished(first.json["task_id"])["result"]["outcome"] == "generated"
    third = writer.click_generate(content)
    assert third.status_code == 409 and "max 4 in-article images per article" in third.json["error"]
    assert fake_openai.call_count == 5, "the 5th in-article image was never paid for"
    statuses = [(row["position"], row["status"]) for row in writer.images(content)]
    assert statuses.count((5, "pending")) == 1


def test_two_clicks_with_max_two_make_two_in_article_images(writer, start_worker):
    writer.configure(provider="local", model="placeholder", max_in_article_images=2)
    start_worker(LOCAL_PROVIDER_LATENCY="0.3")
    content = writer.article(in_article=4)
    writer.finished(writer.click_generate(content).json["task_id"])
    again = writer.click_generate(content)
    assert again.status_code == 409 and "max 2 in-article images per article — change it in Settings" in \
        again.json["error"]
    generated = [row for row in writer.images(content) if row["status"] == "generated"]
    assert sorted((row["type"], row["position"]) for row in generated) == [
        ("featured", 0), ("in_article", 1), ("in_article", 2)]
    # explicit ids are the writer's choice: honoured whatever the cap
    third = next(row["id"] for row in writer.images(content) if row["position"] == 3)
    chosen = writer.click_generate(ids=[third])
    assert chosen.status_code == 202 and chosen.json["note"] is None
    assert writer.finished(chosen.json["task_id"])["result"]["outcome"] == "generated"


def test_images_page_and_modal_say_what_the_cap_leaves_out(writer):
    writer.configure(provider="local", model="placeholder", max_in_article_images=2)
    writer.article(in_article=4)
    writer.login()
    page = writer.client.get("/writer/images").get_data(as_text=True)
    assert "Generate Images (3)" in page
    assert page.count("2 in-article images are left out: max 2 in-article images per article — change it in "
                      "Settings.") == 2, "under the button and in the modal's template"


# ---------------------------------------------------------------- no dead end

def test_a_failed_image_is_generated_again_by_a_plain_generate(writer, fake_openai, start_worker):
    _openai(writer, fake_openai, start_worker, max_in_article_images=2)
    content = writer.article(in_article=2)
    fake_openai.queue_behaviours("ok", "content-policy", "ok")
    result = writer.finished(writer.click_generate(content).json["task_id"])["result"]
    assert result["state"] == "SUCCESS" and result["outcome"] == "partial"
    retry = writer.click_generate(content)
    assert retry.status_code == 202 and [item["label"] for item in retry.json["queue"]] == ["In-Article Image 1"]
    assert writer.finished(retry.json["task_id"])["result"]["outcome"] == "generated"
    assert fake_openai.call_count == 4
    assert {row["status"] for row in writer.images(content)} == {"generated"}


def test_the_list_card_of_a_failed_image_has_retry(writer, fake_openai, start_worker):
    _openai(writer, fake_openai, start_worker, max_in_article_images=0)
    failing = writer.write("Fails", featured_prompt="x [provider-fail:content-policy]")
    image_id = failing["images"][0]["id"]
    writer.finished(writer.click_generate(failing).json["task_id"])
    writer.login()
    page = writer.client.get("/writer/images").get_data(as_text=True)
    assert f'data-retry-ids="[{image_id}]"' in page
    assert "Generate Images (1)" in page, "and Generate takes it too"


def test_cli_retry_generates_the_failed_images_again(writer, fake_openai, start_worker, worker_env):
    _openai(writer, fake_openai, start_worker, max_in_article_images=1)
    content = writer.article(in_article=1)
    fake_openai.queue_behaviours("content-policy", "content-policy")
    first = run_cli(worker_env, "images", "generate", "--content", str(content["id"]))
    assert first.returncode == 1 and "outcome: failed (no image was generated)" in first.stdout
    assert "SUCCESS: 0 generated, 2 failed" in first.stdout, "the task ran to the end: SUCCESS, yet nothing made"
    retried = run_cli(worker_env, "images", "retry", "--content", str(content["id"]))
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "SUCCESS: 2 generated, 0 failed" in retried.stdout and "outcome: generated" in retried.stdout
    nothing = run_cli(worker_env, "images", "retry", "--content", str(content["id"]))
    assert nothing.returncode == 1 and "nothing to retry" in nothing.stderr


# ---------------------------------------------------------------- honest outcome

def test_every_ending_has_its_outcome_in_progress_done_and_task_events(writer, fake_openai, start_worker,
                                                                        live_server):
    _openai(writer, fake_openai, start_worker, max_in_article_images=1)
    failing = writer.write("All fail", featured_prompt="x [provider-fail:content-policy]",
                           in_article_prompts=["y [provider-fail:bad-key]"])
    task_id = writer.click_generate(failing).json["task_id"]
    _response, stream = open_stream(live_server, writer.who, task_id)
    events = list(stream.events())
    done = json.loads(events[-1].data)
    assert events[-1].event == "done" and done["state"] == "SUCCESS" and done["outcome"] == "failed"
    tasks = [json.loads(e.data) for e in events if e.event == "task"]
    assert tasks[-1]["outcome"] == "failed"
    assert all((t["outcome"] is None) == (t["state"] not in ("SUCCESS", "FAILURE")) for t in tasks), \
        "no outcome while it runs, the outcome once it ended"
    body = writer.progress(task_id)
    assert body["meta"]["outcome"] == "failed" and body["result"]["outcome"] == "failed"


def test_cancelled_images_show_as_cancelled_and_the_outcome_says_so(writer, start_worker):
    writer.configure(provider="local", model="placeholder", max_in_article_images=4)
    start_worker(LOCAL_PROVIDER_LATENCY="1.0")
    content = writer.article()
    task_id = writer.click_generate(content).json["task_id"]
    wait_for(lambda: writer.progress(task_id)["meta"]["current_image"] >= 1, message="first image started")
    assert writer.cancel(task_id).status_code == 202
    body = writer.finished(task_id)
    assert body["result"]["outcome"] == "cancelled" and body["meta"]["outcome"] == "cancelled"
    shown = [item["status"] for item in body["meta"]["queue"]]
    assert shown[0] == "completed" and "cancelled" in shown and "pending" not in shown
    assert "pending" in [row["status"] for row in writer.images(content)], "the rows are pending again"
    modal = writer.client.get(f"/writer/tasks/{task_id}/modal", headers=writer.headers)
    assert modal.status_code == 200 and "Cancelled." in modal.get_data(as_text=True)
