"""The article page and the article form, at the test client: the finished article shown, alt
text and caption saved inline (htmx, CSRF), and prompt rows that move, add and remove images
without ever dropping a paid one unasked."""

from __future__ import annotations

import pytest

from tests.support.writer import Writer

BODY = "<p>Intro</p><h2>Starter</h2><p>Feed it.</p><h2>Dough</h2><p>Knead.</p>"


@pytest.fixture
def generated(writer: Writer, worker) -> dict:  # noqa: ANN001
    writer.configure(provider="local", model="placeholder", max_in_article_images=3)
    content = writer.write("Sourdough", featured_prompt="A loaf", in_article_prompts=["Starter", "Dough", "Oven"],
                           html=BODY)
    assert writer.finished(writer.generate(content))["meta"]["completed"] == 4
    assert writer.login().status_code == 302
    return content


def page(writer: Writer, content: dict, **kwargs) -> str:  # noqa: ANN003
    response = writer.client.get(f"/writer/content/{content['id']}", **kwargs)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def output(writer: Writer, content: dict) -> str:
    return writer.client.get(f"/api/v1/writer/content/{content['id']}/html", headers=writer.headers).json["html"]


def htmx(writer: Writer) -> dict:
    return {"HX-Request": "true", "X-CSRFToken": writer.csrf}


def rows_form(writer: Writer, content: dict, rows: list[tuple[int | str, str]], **extra) -> dict:  # noqa: ANN003
    return {"csrf_token": writer.csrf, "title": content["title"], "html": BODY, "featured_prompt": "A loaf",
            "in_article_ids": [str(i) for i, _ in rows], "in_article_prompts": [p for _, p in rows], **extra}


def test_the_page_shows_the_finished_article_and_every_image(writer, generated):
    html = page(writer, generated)
    assert output(writer, generated) in html, "the page shows the same HTML as …/html"
    for row in writer.images(generated):
        assert f'id="image-card-{row["id"]}"' in html
    assert "Copy HTML" in html and f"/api/v1/writer/content/{generated['id']}/export.zip" in html
    fragment = page(writer, generated, headers={"HX-Request": "true"})
    assert fragment.lstrip().startswith('<div class="article-area"') and "<html" not in fragment


def test_alt_text_and_caption_are_saved_inline_and_shown_in_the_output(writer, generated):
    image = writer.images(generated)[1]
    hostile = 'Jar <b>"&\' of starter'
    response = writer.client.post(f"/writer/images/{image['id']}/text", headers=htmx(writer),
                                  data={"alt_text": hostile, "caption": "Day 3 <i>bubbles</i>"})
    assert response.status_code == 200
    fragment = response.get_data(as_text=True)
    assert "Saved." in fragment and "<b>" not in fragment and "<i>bubbles" not in fragment
    html = output(writer, generated)
    assert 'alt="Jar &lt;b&gt;&quot;&amp;\' of starter"' in html or 'alt="Jar &lt;b>&quot;&amp;\' of starter"' in html
    assert "<figcaption>Day 3 &lt;i&gt;bubbles&lt;/i&gt;</figcaption>" in html
    cleared = writer.client.post(f"/writer/images/{image['id']}/text", headers=htmx(writer),
                                 data={"alt_text": "  ", "caption": ""})
    assert cleared.status_code == 200 and "<figcaption>" not in output(writer, generated)
    assert 'alt="Starter' in output(writer, generated), "a blank alt text falls back to the draft"


def test_bad_alt_text_answers_400_and_saves_nothing(writer, generated):
    image = writer.images(generated)[1]
    response = writer.client.post(f"/writer/images/{image['id']}/text", headers=htmx(writer),
                                  data={"alt_text": "x" * 5000, "caption": "kept out"})
    assert response.status_code == 400 and "At most" in response.get_data(as_text=True)
    assert "kept out" not in output(writer, generated)


def test_inline_edit_without_csrf_is_refused(writer, generated):
    image = writer.images(generated)[1]
    response = writer.client.post(f"/writer/images/{image['id']}/text", data={"alt_text": "no token"},
                                  headers={"HX-Request": "true"})
    assert response.status_code == 400 and "no token" not in output(writer, generated)


def test_moving_rows_moves_the_images_with_their_files(writer, generated):
    before = {row["prompt"]: row for row in writer.images(generated) if row["type"] == "in_article"}
    rows = [(before["Oven"]["id"], "Oven"), (before["Starter"]["id"], "Starter"), (before["Dough"]["id"], "Dough")]
    response = writer.client.post(f"/writer/content/{generated['id']}/edit", data=rows_form(writer, generated, rows))
    assert response.status_code == 302
    after = {row["prompt"]: row for row in writer.images(generated) if row["type"] == "in_article"}
    order = ("Oven", "Starter", "Dough")
    moved = [(after[p]["position"], after[p]["id"], after[p]["image_url"]) for p in order]
    assert moved == [(n, before[p]["id"], before[p]["image_url"]) for n, p in enumerate(order, 1)]
    assert all(row["status"] == "generated" for row in after.values())


def test_new_rows_are_numbered_after_the_kept_ones_and_a_new_prompt_keeps_the_file(writer, generated):
    before = {row["position"]: row for row in writer.images(generated) if row["type"] == "in_article"}
    rows = [("", "A new first image"), (before[1]["id"], "Starter, closer"), ("", ""), (before[2]["id"], "Dough"),
            (before[3]["id"], "Oven")]
    response = writer.client.post(f"/writer/content/{generated['id']}/edit", data=rows_form(writer, generated, rows))
    assert response.status_code == 302
    after = [row for row in writer.images(generated) if row["type"] == "in_article"]
    assert [(row["position"], row["prompt"]) for row in after] == [
        (1, "A new first image"), (2, "Starter, closer"), (3, "Dough"), (4, "Oven")]
    changed = after[1]
    assert changed["id"] == before[1]["id"] and changed["image_url"] == before[1]["image_url"]
    assert changed["status"] == "pending", "Generate makes a version that fits the new prompt"


def test_removing_a_paid_image_asks_first(writer, generated):
    before = {row["position"]: row for row in writer.images(generated) if row["type"] == "in_article"}
    rows = [(before[1]["id"], "Starter"), (before[3]["id"], "Oven")]
    asked = writer.client.post(f"/writer/content/{generated['id']}/edit", data=rows_form(writer, generated, rows))
    text = asked.get_data(as_text=True)
    assert asked.status_code == 400 and "In-Article Image 2 has 1 paid version" in text
    assert 'name="confirm_removal"' in text
    assert len(writer.images(generated)) == 4, "nothing changed before the confirmation"
    done = writer.client.post(f"/writer/content/{generated['id']}/edit",
                              data=rows_form(writer, generated, rows, confirm_removal="yes"))
    assert done.status_code == 302
    assert [(row["position"], row["id"]) for row in writer.images(generated) if row["type"] == "in_article"] == [
        (1, before[1]["id"]), (2, before[3]["id"])]


def test_an_emptied_prompt_of_an_existing_image_is_an_error_not_a_removal(writer, generated):
    before = [row for row in writer.images(generated) if row["type"] == "in_article"]
    rows = [(before[0]["id"], ""), (before[1]["id"], "Dough"), (before[2]["id"], "Oven")]
    response = writer.client.post(f"/writer/content/{generated['id']}/edit", data=rows_form(writer, generated, rows))
    assert response.status_code == 400 and "Write a prompt, or remove the image" in response.get_data(as_text=True)
    assert [row["prompt"] for row in writer.images(generated)][1:] == ["Starter", "Dough", "Oven"]


def test_a_row_naming_another_articles_image_is_refused(writer, generated):
    other = writer.write("Other", in_article_prompts=["Elsewhere"])
    rows = [(other["images"][0]["id"], "Stolen")]
    response = writer.client.post(f"/writer/content/{generated['id']}/edit", data=rows_form(writer, generated, rows))
    assert response.status_code == 400 and "no longer part of the article" in response.get_data(as_text=True)
    assert writer.images(other)[0]["prompt"] == "Elsewhere"


def test_the_new_form_numbers_rows_from_one(writer, acme):
    assert writer.login().status_code == 302
    response = writer.client.post("/writer/content/new", data={
        "csrf_token": writer.csrf, "title": "Garden", "featured_prompt": "Roses",
        "in_article_ids": ["", "", ""], "in_article_prompts": ["Tulips", "", "Daisies"]})
    assert response.status_code == 302 and "/writer/content/" in response.headers["Location"]
    images = writer.client.get("/api/v1/writer/images/", headers=writer.headers).json["images"]
    assert [(i["type"], i["position"], i["prompt"]) for i in images] == [
        ("featured", 0, "Roses"), ("in_article", 1, "Tulips"), ("in_article", 2, "Daisies")]


def test_the_edit_page_shows_each_image_with_its_state_and_thumbnail(writer, generated):
    html = writer.client.get(f"/writer/content/{generated['id']}/edit").get_data(as_text=True)
    rows = writer.images(generated)
    assert html.count('class="row-image"') == 4 and html.count('class="badge generated"') == 4
    assert all(row["mobile_url"] in html for row in rows)
    assert all(f'name="in_article_ids" value="{row["id"]}"' in html for row in rows if row["type"] == "in_article")


def test_a_blank_featured_prompt_keeps_the_featured_image(writer, generated):
    """As the API (DELETE of the featured image is a 409): the form answers 400 and changes nothing."""
    featured = writer.images(generated)[0]
    rows = [(row["id"], row["prompt"]) for row in writer.images(generated) if row["type"] == "in_article"]
    response = writer.client.post(f"/writer/content/{generated['id']}/edit",
                                  data={**rows_form(writer, generated, rows), "featured_prompt": "",
                                        "confirm_removal": "yes"})
    assert response.status_code == 400 and "featured image cannot be deleted" in response.get_data(as_text=True)
    assert writer.images(generated)[0] == featured
