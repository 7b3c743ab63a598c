"""Isolation: every endpoint and page of the app, asked by a writer of another account about
Globex's article, images, task and media files, answers 404 (or 403 for the operators' queue
dashboard) and reveals nothing of Globex; lists and pages show none of it; writes change none of
it. The test fails when a route exists that it did not ask, so a new endpoint must be added here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import RequestRedirect

from tests.support.accounts import Accounts, AuthActions
from tests.support.writer import GENERATE, SETTINGS, article, configure, finished, images

SECRET_TITLE = "Globex confidential launch"
SECRET_PROMPT = "Globex prototype under a tarp"


def media_status(client: FlaskClient, key: str, who: dict) -> int:
    with client.get(f"/media/{key}", headers=who["headers"]) as response:  # closes the file sent
        return response.status_code


def _globex_work(client: FlaskClient, globex: dict) -> dict:
    """Globex's article, its generated images (files on disk) and the finished task."""
    configure(client, globex, provider="local", model="placeholder", max_in_article_images=1)
    content = article(client, globex, in_article=1, title=SECRET_TITLE)
    body = {"title": f"{SECRET_TITLE} 2", "featured_prompt": SECRET_PROMPT}
    second = client.post("/api/v1/writer/content/", json=body, headers=globex["headers"])
    assert second.status_code == 201
    task_id = client.post(GENERATE, json={"content_id": content["id"]}, headers=globex["headers"]).json["task_id"]
    assert finished(client, globex, task_id)["state"] == "SUCCESS"
    rows = images(client, globex, content["id"])
    keys = [url.removeprefix("/media/") for row in rows for url in (row["image_url"], row["mobile_url"]) if url]
    assert keys and all(media_status(client, key, globex) == 200 for key in keys)
    return {"content_id": content["id"], "image_ids": [row["id"] for row in rows], "task_id": task_id,
            "media": keys, "secrets": [SECRET_TITLE, SECRET_PROMPT, task_id, *keys]}


def test_every_route_refuses_another_accounts_ids_and_reveals_nothing(app: Flask, client: FlaskClient,
                                                                        accounts: Accounts, worker):  # noqa: ANN001
    globex = accounts.create("Globex")
    work = _globex_work(client, globex)
    intruder = accounts.create("Intruder", admin=True)  # an account admin, but no operator
    auth = AuthActions(client)
    assert auth.login(intruder["email"]).status_code == 302
    api, form = intruder["headers"], {"csrf_token": auth.csrf}
    cid, tid = work["content_id"], work["task_id"]
    adapter = app.url_map.bind("localhost")
    asked: set[str] = set()

    def ask(method: str, path: str, expected: set[int], **kwargs) -> str:  # noqa: ANN003
        try:
            asked.add(adapter.match(path.split("?")[0], method=method)[0])
        except RequestRedirect as redirect:  # /rq/0/ is the canonical /rq/ (a default argument)
            asked.add(adapter.match(urlsplit(redirect.new_url).path, method=method)[0])
        with client.open(path, method=method, **kwargs) as response:
            body = response.get_data(as_text=True)
        assert response.status_code in expected, f"{method} {path}: {response.status_code} {body[:200]}"
        leaked = [secret for secret in work["secrets"] if secret in body]
        assert not leaked, f"{method} {path} revealed {leaked}"
        return body

    # Routes that name Globex's ids: 404, with the session and with a Bearer token.
    for path in (f"/writer/content/{cid}/edit", f"/writer/tasks/{tid}/modal", f"/writer/tasks/{tid}/stream",
                 *(f"/media/{key}" for key in work["media"])):
        ask("GET", path, {404})
    ask("POST", f"/writer/content/{cid}/edit", {404}, data={**form, "title": "Taken over"})
    ask("POST", f"/writer/content/{cid}/delete", {404}, data=form)
    for path in (f"/api/v1/system/settings/task_progress/{tid}/", f"/api/v1/tasks/{tid}/events"):
        ask("GET", path, {404}, headers=api)
        ask("GET", path, {404})  # the same with the session cookie
    ask("POST", f"/api/v1/tasks/{tid}/cancel", {404}, headers=api)
    ask("POST", GENERATE, {404}, headers=api, json={"content_id": cid})
    ask("POST", GENERATE, {404}, headers=api, json={"ids": work["image_ids"]})
    ask("GET", f"/api/v1/writer/images/?content_id={cid}", {200}, headers=api)

    # The intruder's own lists, pages and settings: nothing of Globex.
    for path in ("/", "/writer/images", f"/writer/images?q={SECRET_TITLE.split()[0]}",
                 "/writer/images?status=generated", "/writer/content/new", "/settings/integrations",
                 "/settings/api-token"):
        ask("GET", path, {200, 302}, follow_redirects=True)
    for path in ("/api/v1/writer/content/", "/api/v1/writer/images/", SETTINGS,
                 "/api/v1/system/integrations/openai/", "/api/v1/system/integrations/runware/"):
        ask("GET", path, {200}, headers=api)
    # Writes land in the intruder's own account only.
    ask("PUT", SETTINGS, {200}, headers=api, json={"max_in_article_images": 5})
    ask("PUT", "/api/v1/system/integrations/runware/", {200}, headers=api, json={"model": "runware:101@1"})
    ask("POST", "/api/v1/writer/content/", {201}, headers=api, json={"title": "Intruder's own"})
    ask("POST", "/writer/content/new", {200, 302}, data={**form, "title": "Intruder's page article"})
    ask("POST", "/settings/integrations/image_generation", {200, 302},
        data={**form, "provider": "local", "model": "placeholder", "image_type": "realistic",
              "max_in_article_images": "3", "image_format": "webp", "desktop_enabled": "on"})
    ask("POST", "/settings/integrations/openai", {200, 302}, data={**form, "api_key": "", "model": "gpt-image-2"})
    ask("POST", "/settings/api-token", {200, 302}, data=form)
    ask("POST", "/settings/api-token/revoke", {200, 302}, data=form)

    # The operators' queue dashboard: every route, 403 for an account admin who is not an operator.
    for path in ("/rq/", "/rq/0/", "/rq/0/view", "/rq/0/view/queues", "/rq/0/view/workers", "/rq/0/view/jobs",
                 f"/rq/0/view/job/{tid}", "/rq/0/view/jobs/images/queued/10/asc/1", "/rq/0/data/queues.json",
                 "/rq/0/data/workers.json", f"/rq/0/data/job/{tid}.json",
                 "/rq/0/data/jobs/images/finished/10/asc/1.json",
                 "/rq/favicon.ico", "/rq/static/css/bootstrap.min.css", "/rq/requeue/images"):
        ask("GET", path, {403}, follow_redirects=True)
    for path in (f"/rq/job/{tid}/delete", f"/rq/job/{tid}/requeue", "/rq/queue/images/finished/empty",
                 "/rq/queue/images/compact", "/rq/requeue/images"):
        ask("POST", path, {403}, data=form)

    # Public routes carry no account data.
    for path in ("/healthz", "/api/v1/openapi.json", "/static/css/app.css", "/login"):
        ask("GET", path, {200, 302, 503})
    ask("POST", "/logout", {302}, data=form)
    ask("POST", "/login", {401}, data={"email": intruder["email"], "password": "wrong", "csrf_token": auth.csrf})

    every = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert asked == every, f"routes not asked: {sorted(every - asked)}"

    # Globex's data is as it was.
    assert [row["status"] for row in images(client, globex, cid)] == ["generated", "generated"]
    own = client.get("/api/v1/writer/content/", headers=globex["headers"]).json["content"]
    assert {item["title"] for item in own} == {SECRET_TITLE, f"{SECRET_TITLE} 2"}
    assert client.get(SETTINGS, headers=globex["headers"]).json["config"]["max_in_article_images"] == 1
    assert all(media_status(client, key, globex) == 200 for key in work["media"])
