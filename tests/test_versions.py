"""Image versions end to end, with a real worker: regenerating keeps every paid-for result as a
version, the active one is what the image shows, versions can be activated and deleted (their
files leave the store), and a failed regeneration changes nothing the writer sees."""

from __future__ import annotations

from pathlib import Path

from tests.support.writer import Writer

OPENAI_KEY = "sk-test-0123456789"


def image_api(writer: Writer, image_id: int, suffix: str = "") -> str:
    return f"/api/v1/writer/images/{image_id}/{suffix}"


def get_image(writer: Writer, image_id: int) -> dict:
    response = writer.client.get(image_api(writer, image_id), headers=writer.headers)
    assert response.status_code == 200, response.json
    return response.json


def regenerate(writer: Writer, image_id: int, **body: str) -> dict:
    response = writer.client.post(image_api(writer, image_id, "regenerate"), json=body or None,
                                  headers=writer.headers)
    assert response.status_code == 202, response.json
    assert [item["image_id"] for item in response.json["queue"]] == [image_id]
    return response.json


def generated_image(writer: Writer) -> dict:
    """One article whose one in-article image is generated: that image's detail."""
    content = writer.write("Sourdough at home", in_article_prompts=["A loaf on a board"])
    image_id = writer.images(content)[0]["id"]
    assert writer.finished(writer.generate(content))["meta"]["completed"] == 1
    return get_image(writer, image_id)


def local_files(app_config: dict, version: dict) -> list[Path]:
    media = Path(app_config["MEDIA_ROOT"])
    return [media / url.removeprefix("/media/") for url in (version["image_url"], version["mobile_url"])]


def served(writer: Writer, url: str) -> int:
    response = writer.client.get(url, headers=writer.headers)
    response.close()
    return response.status_code


def test_regenerating_with_a_new_prompt_keeps_the_old_version_and_shows_the_new_one(writer, worker, app_config):
    writer.configure(provider="local", model="placeholder")
    first = generated_image(writer)
    assert [v["active"] for v in first["versions"]] == [True] and first["version_count"] == 1
    old = first["versions"][0]
    assert old["prompt"] == "A loaf on a board" and first["active_version_id"] == old["id"]

    task = regenerate(writer, first["id"], prompt="A sliced loaf, crumb visible")
    assert task["existing"] is False
    assert writer.finished(task["task_id"])["meta"]["completed"] == 1
    image = get_image(writer, first["id"])
    old_again, new = image["versions"]
    assert {**old_again, "active": True} == old, "a stored version is never changed by a later generation"
    assert new["active"] and not old_again["active"] and image["active_version_id"] == new["id"]
    assert new["prompt"] == "A sliced loaf, crumb visible" == image["prompt"]
    assert image["image_url"] == new["image_url"] != old["image_url"] and image["status"] == "generated"
    assert image["attempts"] == 2 and image["cost"] == old["cost"] + new["cost"]
    assert all(path.is_file() for path in local_files(app_config, old)), "the old files stay in the store"
    assert served(writer, old["image_url"]) == 200 and served(writer, new["image_url"]) == 200


def test_activating_then_deleting_versions(writer, worker, app_config):
    writer.configure(provider="local", model="placeholder")
    first = generated_image(writer)
    writer.finished(regenerate(writer, first["id"])["task_id"])
    old, new = get_image(writer, first["id"])["versions"]

    activated = writer.client.post(image_api(writer, first["id"], f"versions/{old['id']}/activate"),
                                   headers=writer.headers)
    assert activated.status_code == 200
    assert activated.json["image_url"] == old["image_url"] and activated.json["mobile_url"] == old["mobile_url"]
    assert [v["active"] for v in activated.json["versions"]] == [True, False]
    assert writer.images(first["content_id"])[0]["image_url"] == old["image_url"], "lists show the active one"

    refused = writer.client.delete(image_api(writer, first["id"], f"versions/{old['id']}"), headers=writer.headers)
    assert refused.status_code == 409 and "activate another version" in refused.json["error"]
    assert all(path.is_file() for path in local_files(app_config, old))

    deleted = writer.client.delete(image_api(writer, first["id"], f"versions/{new['id']}"), headers=writer.headers)
    assert deleted.status_code == 200 and [v["id"] for v in deleted.json["versions"]] == [old["id"]]
    assert not any(path.exists() for path in local_files(app_config, new)), "its files left the store"
    assert served(writer, new["image_url"]) == 404 and served(writer, old["image_url"]) == 200
    gone = writer.client.post(image_api(writer, first["id"], f"versions/{new['id']}/activate"),
                              headers=writer.headers)
    assert gone.status_code == 404


def test_a_failed_regeneration_keeps_the_active_version(writer, fake_openai, start_worker, app_config):
    writer.save_api_key("openai", OPENAI_KEY)
    writer.configure(provider="openai", model="gpt-image-2")
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    first = generated_image(writer)
    task = regenerate(writer, first["id"], prompt="A loaf [provider-fail:content-policy]")
    result = writer.finished(task["task_id"])
    assert result["meta"]["failed"] == 1 and result["meta"]["results"][0]["status"] == "failed"
    image = get_image(writer, first["id"])
    assert image["status"] == "generated" and image["error"], "still shown, with what went wrong"
    assert image["versions"] == first["versions"] and image["image_url"] == first["image_url"]
    assert image["prompt"] == "A loaf [provider-fail:content-policy]", "the new prompt was saved with the task"
    assert all(path.is_file() for path in local_files(app_config, first["versions"][0]))
    again = regenerate(writer, first["id"], prompt="A loaf, morning light")
    assert writer.finished(again["task_id"])["meta"]["completed"] == 1
    assert get_image(writer, first["id"])["error"] is None and len(get_image(writer, first["id"])["versions"]) == 2


def test_regenerating_an_image_already_queued_answers_its_task(writer):
    """No worker runs: the first task keeps the image queued."""
    content = writer.write("Sourdough at home", in_article_prompts=["A loaf on a board"])
    image_id = writer.images(content)[0]["id"]
    task_id = writer.generate(content)
    again = regenerate(writer, image_id)
    assert again["existing"] is True and again["task_id"] == task_id
    changed = writer.client.post(image_api(writer, image_id, "regenerate"), json={"prompt": "Another loaf"},
                                 headers=writer.headers)
    assert changed.status_code == 409 and "not saved" in changed.json["error"]
    assert get_image(writer, image_id)["prompt"] == "A loaf on a board"


def test_regenerate_validates_its_body_and_writes_nothing(writer):
    content = writer.write("Sourdough at home", in_article_prompts=["A loaf on a board"])
    image_id = writer.images(content)[0]["id"]
    for body, field in (({"prompt": ""}, "prompt"), ({"prompt": 3}, "prompt"), ({"alt_text": "x"}, "alt_text"),
                        ([], "body")):
        response = writer.client.post(image_api(writer, image_id, "regenerate"), json=body, headers=writer.headers)
        assert response.status_code == 400 and field in response.json["errors"], (body, response.json)
    image = get_image(writer, image_id)
    assert image["status"] == "pending" and image["prompt"] == "A loaf on a board"
