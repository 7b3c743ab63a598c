"""The writer and settings pages, as a logged-in user sees them."""

from __future__ import annotations

from igny8.accounts.demo import DEMO_ARTICLES, DEMO_EMAIL, DEMO_PASSWORD


def test_seed_demo_is_idempotent_and_demo_login_reaches_images(client, runner, auth):
    for _ in range(2):
        result = runner.invoke(args=["seed-demo"])
        assert result.exit_code == 0, result.output
    auth.login(DEMO_EMAIL, DEMO_PASSWORD)
    page = client.get("/writer/images").get_data(as_text=True)
    for article in DEMO_ARTICLES:
        assert page.count(article["title"].replace("'", "&#39;")) >= 1
    assert "placeholder renderer" in page
    assert page.count('data-generate') == len(DEMO_ARTICLES)


def test_images_page_search_filter_and_fragment(client, runner, auth):
    runner.invoke(args=["seed-demo"])
    auth.login(DEMO_EMAIL, DEMO_PASSWORD)
    page = client.get("/writer/images?q=lisbon").get_data(as_text=True)
    assert "Lisbon" in page and "Sourdough" not in page
    fragment = client.get("/writer/images?q=bread", headers={"HX-Request": "true"})
    assert "HX-Request" in fragment.headers["Vary"]
    text = fragment.get_data(as_text=True)
    assert text.lstrip().startswith('<div id="images-table">') and "<html" not in text
    assert "No article matches" in client.get("/writer/images?status=generated").get_data(as_text=True)


def test_create_and_edit_article_through_the_form(client, auth, acme):
    auth.login(acme["email"])
    response = client.post("/writer/content/new", data={
        "csrf_token": auth.csrf, "title": "Garden", "html": "", "featured_prompt": "Roses",
        "in_article_prompts": ["Tulips", "", "Daisies"]})
    assert response.status_code == 302
    images = client.get("/api/v1/writer/images/", headers=auth.headers).json["images"]
    assert [(i["type"], i["position"], i["prompt"]) for i in images] == [
        ("featured", 0, "Roses"), ("in_article", 1, "Tulips"), ("in_article", 3, "Daisies")]
    content_id = images[0]["content_id"]
    edit = client.get(f"/writer/content/{content_id}/edit").get_data(as_text=True)
    assert "Tulips" in edit and "Daisies" in edit
    client.post(f"/writer/content/{content_id}/edit", data={
        "csrf_token": auth.csrf, "title": "Garden", "featured_prompt": "Red roses", "in_article_prompts": ["Tulips"]})
    images = client.get("/api/v1/writer/images/", headers=auth.headers).json["images"]
    assert [(i["position"], i["prompt"]) for i in images] == [(0, "Red roses"), (1, "Tulips")]


def test_article_form_shows_errors(client, auth, acme):
    auth.login(acme["email"])
    response = client.post("/writer/content/new", data={"csrf_token": auth.csrf, "title": ""})
    assert response.status_code == 400 and "Required." in response.get_data(as_text=True)


def test_integrations_page_shows_defaults_and_never_the_key(client, auth, acme, caplog):
    key = "sk-live-VERYSECRET-9876"
    auth.login(acme["email"])
    page = client.get("/settings/integrations").get_data(as_text=True)
    assert page.count('class="badge default"') >= 7
    response = client.post("/settings/integrations/openai", data={"csrf_token": auth.csrf, "api_key": key,
                                                                  "model": "gpt-image-2"})
    assert response.status_code == 302
    page = client.get("/settings/integrations").get_data(as_text=True)
    assert key not in page and "••••9876" in page
    assert key not in caplog.text


def test_integrations_form_validation(client, auth, acme):
    auth.login(acme["email"])
    response = client.post("/settings/integrations/image_generation", data={
        "csrf_token": auth.csrf, "provider": "openai", "model": "dall-e-3", "image_type": "realistic",
        "max_in_article_images": "2", "image_format": "webp", "concurrency": "1", "desktop_enabled": "on"})
    assert response.status_code == 400
    assert "retired" in response.get_data(as_text=True)


def test_forms_without_csrf_are_refused(client, auth, acme):
    auth.login(acme["email"])
    assert client.post("/settings/integrations/openai", data={"api_key": "abcdefghijk"}).status_code == 400
    assert client.post("/writer/content/new", data={"title": "x"}).status_code == 400
