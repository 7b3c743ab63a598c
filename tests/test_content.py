"""Articles and images over the API and the pages; the queue-building rule; account isolation."""

from __future__ import annotations

import pytest

from igny8.extensions import db
from igny8.models import Content, Image
from igny8.tasks.rule import build_queue, plan_queue

ARTICLE = {"title": "Bread at home", "html": "<p>Bake.</p>", "featured_prompt": "A loaf",
           "in_article_prompts": ["Starter", "Dough", "Oven"]}


def create(client, who, body=ARTICLE):  # noqa: ANN001, ANN201
    response = client.post("/api/v1/writer/content/", json=body, headers=who["headers"])
    assert response.status_code == 201, response.json
    return response.json


def test_create_article_with_prompts(client, acme):
    article = create(client, acme)
    assert article["title"] == "Bread at home"
    kinds = [(i["type"], i["position"], i["prompt"], i["status"]) for i in article["images"]]
    assert kinds == [("featured", 0, "A loaf", "pending"), ("in_article", 1, "Starter", "pending"),
                     ("in_article", 2, "Dough", "pending"), ("in_article", 3, "Oven", "pending")]
    listed = client.get("/api/v1/writer/content/", headers=acme["headers"]).json["content"]
    assert [a["id"] for a in listed] == [article["id"]]


@pytest.mark.parametrize("body, field", [
    ({"html": "x"}, "title"),
    ({"title": "x" * 301}, "title"),
    ({"title": "ok", "featured_prompt": "p" * 100_000}, "featured_prompt"),
    ({"title": "ok", "in_article_prompts": "not a list"}, "in_article_prompts"),
    ({"title": "ok", "in_article_prompts": [1]}, "in_article_prompts[0]"),
    ({"title": "bad\x00title"}, "title"),
    ({"title": "ok", "surprise": 1}, "surprise"),
])
def test_invalid_article_is_refused_and_nothing_written(client, acme, app, body, field):
    response = client.post("/api/v1/writer/content/", json=body, headers=acme["headers"])
    assert response.status_code == 400 and field in response.json["errors"]
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Content)) == 0
        assert db.session.scalar(db.select(db.func.count()).select_from(Image)) == 0


def test_unicode_titles_and_prompts_are_kept(client, acme):
    article = create(client, acme, {"title": "Pastéis de nata 🥧", "featured_prompt": "Café in Lisboa ☕"})
    assert article["title"] == "Pastéis de nata 🥧" and article["images"][0]["prompt"] == "Café in Lisboa ☕"


def test_images_list_filters(client, acme):
    article = create(client, acme)
    all_images = client.get("/api/v1/writer/images/", headers=acme["headers"]).json["images"]
    assert len(all_images) == 4
    by_content = client.get(f"/api/v1/writer/images/?content_id={article['id']}&status=pending",
                            headers=acme["headers"]).json["images"]
    assert len(by_content) == 4
    assert client.get("/api/v1/writer/images/?status=generated", headers=acme["headers"]).json["images"] == []
    assert client.get("/api/v1/writer/images/?status=nope", headers=acme["headers"]).status_code == 400
    assert client.get("/api/v1/writer/images/?content_id=abc", headers=acme["headers"]).status_code == 400


def test_another_accounts_content_and_images_are_invisible(client, acme, globex):
    article = create(client, acme)
    assert client.get("/api/v1/writer/content/", headers=globex["headers"]).json["content"] == []
    assert client.get("/api/v1/writer/images/", headers=globex["headers"]).json["images"] == []
    assert client.get(f"/api/v1/writer/images/?content_id={article['id']}",
                      headers=globex["headers"]).json["images"] == []


def test_another_accounts_settings_are_separate(client, acme, globex):
    url = "/api/v1/system/integrations/image_generation/"
    client.put(url, json={"max_in_article_images": 7}, headers=acme["headers"])
    assert client.get(url, headers=globex["headers"]).json["config"]["max_in_article_images"] == 2


def test_another_accounts_article_page_is_404(client, auth, acme, globex):
    article = create(client, acme)
    auth.login(globex["email"])
    assert client.get(f"/writer/content/{article['id']}/edit").status_code == 404
    assert client.post(f"/writer/content/{article['id']}/delete", data={"csrf_token": auth.csrf}).status_code == 404


def _images(statuses: list[tuple[str, int, str, str]]) -> list[Image]:
    return [Image(id=n, type=t, position=p, status=s, prompt=prompt)
            for n, (t, p, s, prompt) in enumerate(statuses, start=1)]


def test_queue_rule_featured_plus_capped_in_article():
    images = _images([("featured", 0, "pending", "f")] + [("in_article", p, "pending", "x") for p in (5, 3, 1, 4, 2)])
    queue = build_queue(images, 3)
    assert len(queue) == 4
    assert [(i.type, i.position) for i in queue] == [("featured", 0), ("in_article", 1), ("in_article", 2),
                                                    ("in_article", 3)]


def test_queue_rule_skips_done_and_unprompted_images_and_takes_failed_ones_again():
    images = _images([("featured", 0, "generated", "f"), ("in_article", 1, "pending", " "),
                      ("in_article", 2, "failed", "x"), ("in_article", 3, "pending", "x"),
                      ("in_article", 4, "processing", "x")])
    assert [(i.type, i.position) for i in build_queue(images, 5)] == [("in_article", 2), ("in_article", 3)]
    failed_featured = _images([("featured", 0, "failed", "f")])
    assert [i.type for i in build_queue(failed_featured, 2)] == ["featured"], "a failed image is no dead end"


def test_queue_cap_counts_the_articles_images_already_generated_queued_or_processing():
    images = _images([("featured", 0, "queued", "f")] + [("in_article", 1, "generated", "x"),
                     ("in_article", 2, "queued", "x"), ("in_article", 3, "processing", "x"),
                     ("in_article", 4, "pending", "x"), ("in_article", 5, "failed", "x")])
    plan = plan_queue(images, 4)
    assert [(i.type, i.position) for i in plan.images] == [("in_article", 4)], "3 of the 4 are taken"
    assert plan.left_out == 1
    assert plan.note == "1 in-article image is left out: max 4 in-article images per article — change it in Settings."
    second_click = plan_queue(_images([("in_article", p, s, "x") for p, s in
                                       ((1, "queued"), (2, "queued"), (3, "pending"))]), 2)
    assert second_click.images == [] and second_click.left_out == 1
    assert "max 2 in-article images per article" in second_click.note
    assert plan_queue(_images([("in_article", 1, "pending", "x")]), 2).note is None


def test_queue_rule_with_zero_in_article():
    images = _images([("featured", 0, "pending", "f"), ("in_article", 1, "pending", "x")])
    assert [i.type for i in build_queue(images, 0)] == ["featured"]


def test_unique_content_type_position(app, acme):
    from sqlalchemy.exc import IntegrityError

    with app.app_context():
        content = Content(account_id=acme["account_id"], title="t")
        db.session.add(content)
        db.session.flush()
        db.session.add_all([Image(account_id=acme["account_id"], content_id=content.id, type="in_article", position=1),
                            Image(account_id=acme["account_id"], content_id=content.id, type="in_article", position=1)])
        with pytest.raises(IntegrityError):
            db.session.flush()
        db.session.rollback()
