"""The article and image JSON API: read, edit and delete one article; add, edit and delete its
images; bad values answer 400 per field and write nothing; a task holding images answers 409."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.writer import Writer

CONTENT = "/api/v1/writer/content/"
IMAGES = "/api/v1/writer/images/"


@pytest.fixture
def content(writer: Writer) -> dict:
    return writer.write("Sourdough at home", featured_prompt="A loaf on a board", html="<p>Flour.</p>",
                        in_article_prompts=["Starter in a jar", "Dough in a banneton"])


def call(writer: Writer, method: str, path: str, body: object = None):  # noqa: ANN201
    return writer.client.open(path, method=method, json=body, headers=writer.headers)


def test_an_article_reads_and_patches_its_fields(writer, content):
    read = call(writer, "GET", f"{CONTENT}{content['id']}/")
    assert read.status_code == 200
    assert read.json["title"] == "Sourdough at home" and read.json["html"] == "<p>Flour.</p>"
    assert [img["type"] for img in read.json["images"]] == ["featured", "in_article", "in_article"]
    patched = call(writer, "PATCH", f"{CONTENT}{content['id']}/",
                   {"title": "  Sourdough, slowly ", "html": "<h2>Flour</h2>", "status": "published"})
    assert patched.status_code == 200
    assert (patched.json["title"], patched.json["html"], patched.json["status"]) == (
        "Sourdough, slowly", "<h2>Flour</h2>", "published")
    only_status = call(writer, "PATCH", f"{CONTENT}{content['id']}/", {"status": "draft"})
    assert only_status.json["title"] == "Sourdough, slowly" and only_status.json["status"] == "draft"


@pytest.mark.parametrize(("body", "field"), [
    ({"title": ""}, "title"), ({"title": 5}, "title"), ({"title": "x" * 301}, "title"),
    ({"html": "a\x00b"}, "html"), ({"status": "deleted"}, "status"), ({"featured_prompt": "x"}, "featured_prompt"),
    ({"title": "Fine", "colour": "red"}, "colour"), (["title"], "body"),
])
def test_a_bad_article_patch_answers_400_per_field_and_writes_nothing(writer, content, body, field):
    response = call(writer, "PATCH", f"{CONTENT}{content['id']}/", body)
    assert response.status_code == 400 and field in response.json["errors"], response.json
    assert response.json["success"] is False
    after = call(writer, "GET", f"{CONTENT}{content['id']}/").json
    assert (after["title"], after["html"], after["status"]) == ("Sourdough at home", "<p>Flour.</p>", "draft")


def test_adding_images_keeps_positions_unique(writer, content):
    added = call(writer, "POST", f"{CONTENT}{content['id']}/images/", {"prompt": "Crumb shot"})
    assert added.status_code == 201 and added.json["position"] == 3 and added.json["type"] == "in_article"
    assert added.json["status"] == "pending" and added.json["versions"] == []
    placed = call(writer, "POST", f"{CONTENT}{content['id']}/images/", {"prompt": "Oven", "position": 7})
    assert placed.status_code == 201 and placed.json["position"] == 7
    taken = call(writer, "POST", f"{CONTENT}{content['id']}/images/", {"prompt": "Again", "position": 2})
    assert taken.status_code == 400 and "Position 2 is taken" in taken.json["errors"]["position"]
    for body, field in (({"prompt": "x", "position": 0}, "position"), ({"prompt": "x", "position": "1"}, "position"),
                        ({"prompt": "x", "position": True}, "position"), ({"position": 9}, "prompt"),
                        ({"prompt": "  "}, "prompt"), ({"prompt": "x", "type": "featured"}, "type")):
        response = call(writer, "POST", f"{CONTENT}{content['id']}/images/", body)
        assert response.status_code == 400 and field in response.json["errors"], (body, response.json)
    positions = [img["position"] for img in writer.images(content) if img["type"] == "in_article"]
    assert positions == [1, 2, 3, 7]
    after_last = call(writer, "POST", f"{CONTENT}{content['id']}/images/", {"prompt": "Slices"})
    assert after_last.json["position"] == 8


def test_image_fields_patch_and_the_alt_text_is_drafted_when_unset(writer, content):
    image = writer.images(content)[1]
    assert image["alt_text"] == "Starter in a jar – Sourdough at home" and image["alt_text_drafted"]
    assert image["caption"] is None and image["version_count"] == 0 and image["active_version_id"] is None
    patched = call(writer, "PATCH", f"{IMAGES}{image['id']}/",
                   {"alt_text": " A bubbly starter ", "caption": "Day 5 of the starter.", "prompt": "A starter, day 5"})
    assert patched.status_code == 200
    assert (patched.json["alt_text"], patched.json["caption"], patched.json["prompt"]) == (
        "A bubbly starter", "Day 5 of the starter.", "A starter, day 5")
    assert not patched.json["alt_text_drafted"]
    cleared = call(writer, "PATCH", f"{IMAGES}{image['id']}/", {"alt_text": "", "caption": None})
    assert cleared.json["alt_text"] == "A starter – Sourdough at home" and cleared.json["caption"] is None
    for body, field in (({"prompt": ""}, "prompt"), ({"alt_text": "x" * 301}, "alt_text"),
                        ({"caption": ["x"]}, "caption"), ({"status": "generated"}, "status"), ("x", "body")):
        response = call(writer, "PATCH", f"{IMAGES}{image['id']}/", body)
        assert response.status_code == 400 and field in response.json["errors"], (body, response.json)
    assert call(writer, "GET", f"{IMAGES}{image['id']}/").json["prompt"] == "A starter, day 5"


def test_deleting_images(writer, content):
    featured, first, second = writer.images(content)
    refused = call(writer, "DELETE", f"{IMAGES}{featured['id']}/")
    assert refused.status_code == 409 and "featured image cannot be deleted" in refused.json["error"]
    assert call(writer, "DELETE", f"{IMAGES}{first['id']}/").status_code == 200
    assert call(writer, "GET", f"{IMAGES}{first['id']}/").status_code == 404
    assert [img["id"] for img in writer.images(content)] == [featured["id"], second["id"]]
    writer.generate(ids=[second["id"]])  # no worker: the task holds it queued
    held = call(writer, "DELETE", f"{IMAGES}{second['id']}/")
    assert held.status_code == 409 and "being generated" in held.json["error"]
    prompt = call(writer, "PATCH", f"{IMAGES}{second['id']}/", {"prompt": "Another"})
    assert prompt.status_code == 409
    assert call(writer, "GET", f"{IMAGES}{second['id']}/").json["prompt"] == "Dough in a banneton"
    assert call(writer, "PATCH", f"{IMAGES}{second['id']}/", {"caption": "Proofing"}).status_code == 200


def test_an_article_with_a_running_task_is_not_deleted(writer, content):
    task_id = writer.generate(content)  # no worker: the task holds the images queued
    refused = call(writer, "DELETE", f"{CONTENT}{content['id']}/")
    assert refused.status_code == 409 and "being generated" in refused.json["error"]
    assert call(writer, "GET", f"{CONTENT}{content['id']}/").status_code == 200
    assert writer.cancel(task_id).status_code == 202  # not started: the batch ends at once
    assert call(writer, "DELETE", f"{CONTENT}{content['id']}/").status_code == 200
    assert call(writer, "GET", f"{CONTENT}{content['id']}/").status_code == 404
    assert writer.images(content) == []
    assert writer.progress(task_id)["state"] == "SUCCESS", "the batch's history outlives its article"


def test_deleting_an_article_removes_every_version_and_file(writer, worker, app_config):
    writer.configure(provider="local", model="placeholder")
    content = writer.write("Sourdough at home", featured_prompt="A loaf", in_article_prompts=["Crumb"])
    writer.finished(writer.generate(content))
    featured = writer.images(content)[0]
    writer.finished(call(writer, "POST", f"{IMAGES}{featured['id']}/regenerate").json["task_id"])
    media = Path(app_config["MEDIA_ROOT"])
    files = [p for p in media.rglob("*") if p.is_file()]
    assert len(files) == 6, "two variants of three stored results"
    assert call(writer, "DELETE", f"{CONTENT}{content['id']}/").status_code == 200
    assert not [p for p in media.rglob("*") if p.is_file()]


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "images/")])
def test_unknown_article_ids_answer_404(writer, method, suffix):
    response = call(writer, method, f"{CONTENT}999999/{suffix}", {"prompt": "x"} if method == "POST" else {})
    assert response.status_code == 404 and response.json["success"] is False


def test_the_page_delete_button_removes_an_article_that_had_batches(writer, worker, app_config):
    writer.configure(provider="local", model="placeholder")
    content = writer.write("Sourdough at home", featured_prompt="A loaf")
    task_id = writer.generate(content)
    writer.finished(task_id)
    assert writer.login().status_code == 302
    response = writer.client.post(f"/writer/content/{content['id']}/delete", data={"csrf_token": writer.csrf})
    assert response.status_code == 302
    assert call(writer, "GET", f"{CONTENT}{content['id']}/").status_code == 404
    assert not [p for p in Path(app_config["MEDIA_ROOT"]).rglob("*") if p.is_file()]
    assert writer.progress(task_id)["state"] == "SUCCESS"
