"""The generation engine end to end: API -> RQ job in a real worker process -> provider (local
renderer or a local server speaking the provider's wire format) -> stored files -> progress."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image as PILImage

from tests.support.processes import WorkerProcess
from tests.support.waiting import wait_for
from tests.support.writer import Writer

OPENAI_KEY = "sk-test-0123456789"


def test_local_provider_generates_every_image_and_stores_variants(writer, worker, app_config):
    writer.configure(provider="local", model="placeholder", max_in_article_images=4)
    content = writer.article()
    response = writer.click_generate(content)
    assert response.status_code == 202
    body = response.json
    labels = ["Featured Image"] + [f"In-Article Image {i}" for i in range(1, 5)]
    assert [item["label"] for item in body["queue"]] == labels
    assert all(item["status"] == "pending" and item["content_title"] == content["title"] for item in body["queue"])
    result = writer.finished(body["task_id"])
    assert result["state"] == "SUCCESS"
    assert result["meta"]["completed"] == 5 and result["meta"]["failed"] == 0
    assert [r["status"] for r in result["meta"]["results"]] == ["completed"] * 5
    rows = writer.images(content)
    assert all(row["status"] == "generated" and row["placeholder"] and row["attempts"] == 1 for row in rows)
    media = Path(app_config["MEDIA_ROOT"])
    featured = rows[0]
    with PILImage.open(media / featured["image_url"].removeprefix("/media/")) as desktop, \
            PILImage.open(media / featured["mobile_url"].removeprefix("/media/")) as mobile:
        assert desktop.format == "WEBP" and mobile.format == "WEBP"
        assert desktop.size == (1536, 1024) and mobile.size[0] == 768
    assert "sourdough-at-home" in featured["image_url"]
    served = writer.client.get(featured["image_url"], headers=writer.headers)
    assert served.status_code == 200 and served.mimetype == "image/webp"
    served.close()


def test_openai_batch_calls_the_provider_once_per_image(writer, fake_openai, start_worker):
    writer.save_api_key("openai", OPENAI_KEY)
    writer.configure(provider="openai", model="gpt-image-2", max_in_article_images=4, image_format="png")
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    content = writer.article()
    result = writer.finished(writer.generate(content))
    assert result["meta"]["completed"] == 5
    assert fake_openai.call_count == 5
    assert {call["model"] for call in fake_openai.calls} == {"gpt-image-2"}
    assert "Sourdough at home" in fake_openai.calls[0]["prompt"], "the template adds the article title"
    rows = writer.images(content)
    assert all(r["provider"] == "openai" and r["cost"] > 0 and r["attempts"] == 1 for r in rows)
    assert rows[0]["image_url"].endswith(".png")


def test_concurrent_batch_stores_every_image_and_fails_only_the_undecodable_one(writer, fake_openai, start_worker):
    """Concurrency 3: calls run three at a time while images are stored on their own threads; an
    image that does not decode fails alone, with its cost (it was billed), and nothing is lost."""
    writer.save_api_key("openai", OPENAI_KEY)
    writer.configure(provider="openai", max_in_article_images=4, concurrency=3)
    fake_openai.latency = 0.3
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    content = writer.write("Concurrent", featured_prompt="A cover",
                           in_article_prompts=["One", "Two [provider-fail:garbage-image]", "Three", "Four"])
    result = writer.finished(writer.generate(content))
    assert (result["state"], result["meta"]["completed"], result["meta"]["failed"]) == ("SUCCESS", 4, 1)
    assert fake_openai.call_count == 5, "one call per image, the undecodable one included, none repeated"
    rows = writer.images(content)
    bad = next(r for r in rows if "provider-fail" in r["prompt"])
    assert bad["status"] == "failed" and "not an image" in bad["error"] and bad["cost"] > 0 and bad["attempts"] == 1
    assert all(r["status"] == "generated" and r["image_url"] for r in rows if r is not bad)


def test_runware_batch_uses_the_task_array_format(writer, fake_runware, start_worker):
    writer.save_api_key("runware", "rw-test-0123456789")
    writer.configure(provider="runware", max_in_article_images=2)
    start_worker(RUNWARE_BASE_URL=fake_runware.base_url)
    content = writer.article(in_article=2)
    assert writer.finished(writer.generate(content))["meta"]["completed"] == 3
    assert fake_runware.call_count == 3
    task = fake_runware.calls[0][0]
    assert task["taskType"] == "imageInference" and task["width"] % 64 == 0 and task["height"] % 64 == 0
    assert task["negativePrompt"] and task["positivePrompt"]
    assert all(r["cost"] > 0 for r in writer.images(content))


@pytest.mark.parametrize("behaviours, status, attempts, message", [
    (["429", "ok"], "generated", 2, None),
    (["429-noheader", "ok"], "generated", 2, None),
    (["503", "ok"], "generated", 2, None),
    (["500", "500", "500"], "failed", 3, "OpenAI"),
    (["content-policy"], "failed", 1, "policy"),
    (["timeout"], "failed", 1, "time"),
    (["reset"], "failed", 1, "connection"),
    (["bad-key"], "failed", 1, "key"),
    (["malformed"], "failed", 1, None),
    (["garbage-image"], "failed", 1, "not an image"),
])
def test_provider_faults_end_as_documented_per_image_outcomes(writer, fake_openai, start_worker,
                                                              behaviours, status, attempts, message):
    writer.save_api_key("openai", OPENAI_KEY)
    writer.configure(provider="openai", max_in_article_images=1)
    fake_openai.hang_seconds = 8
    start_worker(OPENAI_BASE_URL=fake_openai.base_url, PROVIDER_TIMEOUT="2")
    content = writer.article(in_article=1)
    fake_openai.queue_behaviours(*behaviours)
    result = writer.finished(writer.generate(content), timeout=60)
    assert result["state"] == "SUCCESS", "one image failing never fails the task"
    featured, second = writer.images(content)
    assert featured["status"] == status and featured["attempts"] == attempts
    if message:
        assert message.lower() in featured["error"].lower()
    assert "sk-test" not in (featured["error"] or "")
    assert second["status"] == "generated", "the other image still ran"
    assert fake_openai.call_count == attempts + 1


def test_double_click_never_queues_twice(writer, worker):
    writer.configure(provider="local", model="placeholder", max_in_article_images=4)
    content = writer.article()
    first = writer.click_generate(content)
    second = writer.click_generate(content)
    assert first.status_code == second.status_code == 202
    assert second.json["task_id"] == first.json["task_id"] and second.json["existing"] is True
    assert len(second.json["queue"]) == 5
    writer.finished(first.json["task_id"])
    again = writer.click_generate(content)
    assert again.status_code == 409 and "Nothing to generate" in again.json["error"]


@pytest.mark.parametrize("body, status", [
    ({}, 400), ({"ids": "1"}, 400), ({"ids": []}, 400), ({"ids": [True]}, 400), ({"ids": [1.5]}, 400),
    ({"ids": list(range(1, 500))}, 400), ({"content_id": "x"}, 400), ({"content_id": 99999}, 404),
    ({"ids": [99999]}, 404), ({"extra": 1}, 400), ([1, 2], 400),
])
def test_malformed_or_unknown_generate_requests(writer, body, status):
    response = writer.click_generate(body=body)
    assert response.status_code == status and response.json["error"]


def test_another_accounts_images_answer_404_and_are_not_queued(writer, globex, writer_for):
    content = writer.article()
    ids = [img["id"] for img in content["images"]]
    intruder = writer_for(globex)
    response = intruder.click_generate(ids=ids)
    assert response.status_code == 404
    assert intruder.click_generate(content).status_code == 404
    assert {img["status"] for img in writer.images(content)} == {"pending"}


def test_explicit_ids_requeue_failed_images(writer, worker):
    writer.configure(provider="local", model="placeholder", max_in_article_images=0)
    content = writer.article(in_article=2)
    ids = [img["id"] for img in content["images"]][1:]
    assert writer.finished(writer.generate(ids=ids))["meta"]["completed"] == 2
    statuses = [img["status"] for img in writer.images(content)]
    assert statuses == ["pending", "generated", "generated"]


def test_cancel_stops_after_the_image_in_flight(writer, start_worker):
    writer.configure(provider="local", model="placeholder", max_in_article_images=4)
    start_worker(LOCAL_PROVIDER_LATENCY="1.0")
    content = writer.article()
    task_id = writer.generate(content)
    wait_for(lambda: writer.progress(task_id)["meta"]["current_image"] >= 1, message="first image started")
    response = writer.cancel(task_id)
    assert response.status_code == 202
    result = writer.finished(task_id)
    assert result["state"] == "SUCCESS" and result["meta"]["cancelled"] is True
    statuses = [img["status"] for img in writer.images(content)]
    assert statuses[0] == "generated" and "pending" in statuses and "processing" not in statuses
    assert "queued" not in statuses
    assert writer.cancel(task_id).status_code == 409


# ---------------------------------------------------------------- a worker killed mid-batch, in steps

def _kill_worker_mid_image(writer: Writer, worker: WorkerProcess, content: dict, task_id: str) -> list[dict]:
    """SIGKILL the worker once one image is done and the next is being made; the rows generated by then."""
    wait_for(lambda: writer.progress(task_id)["meta"]["completed"] >= 1, message="one image done")
    wait_for(lambda: any(i["status"] == "processing" for i in writer.images(content)), message="mid-image")
    worker.kill()
    return [i for i in writer.images(content) if i["status"] == "generated"]


def _dead_task_fails_and_nothing_is_stuck(writer: Writer, app, content: dict, task_id: str,  # noqa: ANN001
                                          done_before: list[dict]) -> list[int]:
    """The task ends FAILURE (task_progress reconciles a dead task), no row stays processing or
    queued, the files made before the kill are intact; the ids of the images it failed."""
    app.config["HEARTBEAT_STALE_SECONDS"] = 3
    result = writer.finished(task_id, timeout=30)
    assert result["state"] == "FAILURE" and "worker" in result["result"]["error"]
    rows = writer.images(content)
    assert not [r for r in rows if r["status"] in ("processing", "queued")]
    media = Path(app.config["MEDIA_ROOT"])
    for row in done_before:
        assert (media / row["image_url"].removeprefix("/media/")).is_file(), "finished files are intact"
    failed_ids = [r["id"] for r in rows if r["status"] == "failed"]
    assert failed_ids and all("interrupted" in r["error"] for r in rows if r["status"] == "failed")
    return failed_ids


def _retry_on_a_new_worker_generates_the_rest(writer: Writer, start_worker, content: dict,  # noqa: ANN001
                                              failed_ids: list[int]) -> None:
    start_worker(LOCAL_PROVIDER_LATENCY="0")
    assert writer.finished(writer.generate(ids=failed_ids))["meta"]["completed"] == len(failed_ids)
    assert {r["status"] for r in writer.images(content)} == {"generated"}


def test_worker_killed_mid_batch_leaves_nothing_stuck(writer, start_worker, app):
    writer.configure(provider="local", model="placeholder", max_in_article_images=4)
    first = start_worker(LOCAL_PROVIDER_LATENCY="1.5")
    content = writer.article()
    task_id = writer.generate(content)
    done_before = _kill_worker_mid_image(writer, first, content, task_id)
    failed_ids = _dead_task_fails_and_nothing_is_stuck(writer, app, content, task_id, done_before)
    _retry_on_a_new_worker_generates_the_rest(writer, start_worker, content, failed_ids)
