"""Isolation: every endpoint and page of the app, asked by a writer of another account about
Globex's article, images, task and media files, answers 404 (or 403 for the operators' queue
dashboard) and reveals nothing of Globex; lists and pages show none of it; writes change none of
it. The test fails when a route exists that it did not ask, so a new endpoint must be added here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import RequestRedirect

from tests.support.accounts import Accounts
from tests.support.waiting import wait_for
from tests.support.writer import GENERATE, SETTINGS, Writer

BULK = "/api/v1/writer/images/generate_bulk/"

SECRET_TITLE = "Globex confidential launch"
SECRET_PROMPT = "Globex prototype under a tarp"
WEBHOOK = "/api/v1/system/integrations/webhook/"
WEBHOOK_SECRET = "globex-webhook-secret-0123456789"


def media_status(client: FlaskClient, key: str, who: dict) -> int:
    with client.get(f"/media/{key}", headers=who["headers"]) as response:  # closes the file sent
        return response.status_code


def _globex_work(globex: Writer) -> dict:
    """Globex's article, its generated images (files on disk) and the finished task."""
    globex.configure(provider="local", model="placeholder", max_in_article_images=1)
    hook_url = "http://127.0.0.1:9/globex-confidential-hook"  # listed here, so it saves; the worker refuses it
    globex.client.application.config["ALLOWED_HTTP_HOSTS"] = ("127.0.0.1:9",)
    saved = globex.client.put(WEBHOOK, json={"url": hook_url, "secret": WEBHOOK_SECRET}, headers=globex.headers)
    assert saved.status_code == 200, saved.json
    content = globex.article(in_article=1, title=SECRET_TITLE)
    globex.write(f"{SECRET_TITLE} 2", featured_prompt=SECRET_PROMPT)
    task_id = globex.generate(content)
    assert globex.finished(task_id)["state"] == "SUCCESS"
    rows = globex.images(content)
    keys = [url.removeprefix("/media/") for row in rows for url in (row["image_url"], row["mobile_url"]) if url]
    assert keys and all(media_status(globex.client, key, globex.who) == 200 for key in keys)
    detail = globex.client.get(f"/api/v1/writer/images/{rows[0]['id']}/", headers=globex.headers).json
    [delivery] = wait_for(lambda: globex.client.get(f"{WEBHOOK}deliveries", headers=globex.headers)
                          .json["deliveries"], message="the task.finished delivery")
    run = globex.client.post(BULK, json={"content_ids": [content["id"]]}, headers=globex.headers)
    assert run.status_code == 409, "its images are generated: nothing to run"
    return {"content_id": content["id"], "image_ids": [row["id"] for row in rows], "task_id": task_id,
            "version_id": detail["versions"][0]["id"], "image": detail, "run_id": _globex_run(globex),
            "media": keys, "delivery": delivery["delivery"],
            "secrets": [SECRET_TITLE, SECRET_PROMPT, task_id, *keys, hook_url, WEBHOOK_SECRET, delivery["delivery"]]}


def _globex_run(globex: Writer) -> str:
    """A run of Globex's: its second article's featured image."""
    second = globex.client.get("/api/v1/writer/content/", headers=globex.headers).json["content"]
    pending = [c["id"] for c in second if c["title"] == f"{SECRET_TITLE} 2"]
    run = globex.client.post(BULK, json={"content_ids": pending}, headers=globex.headers)
    assert run.status_code == 202, run.json
    return run.json["run_id"]


class RouteProbe:
    """Asks one route as the intruder: checks the status and that no secret of Globex is in the
    body, and records the route's endpoint, so the test can tell which routes were never asked."""

    def __init__(self, app: Flask, client: FlaskClient, secrets: list[str]) -> None:
        self.client, self.secrets = client, secrets
        self.adapter = app.url_map.bind("localhost")
        self.asked: set[str] = set()

    def ask(self, method: str, path: str, expected: set[int], **kwargs) -> str:  # noqa: ANN003
        try:
            self.asked.add(self.adapter.match(path.split("?")[0], method=method)[0])
        except RequestRedirect as redirect:  # /rq/0/ is the canonical /rq/ (a default argument)
            self.asked.add(self.adapter.match(urlsplit(redirect.new_url).path, method=method)[0])
        with self.client.open(path, method=method, **kwargs) as response:
            body = response.get_data(as_text=True)
        assert response.status_code in expected, f"{method} {path}: {response.status_code} {body[:200]}"
        leaked = [secret for secret in self.secrets if secret in body]
        assert not leaked, f"{method} {path} revealed {leaked}"
        return body


def _routes_naming_globex_ids_answer_404(probe: RouteProbe, work: dict, api: dict, form: dict) -> None:
    """Routes that name Globex's ids: 404, with the session and with a Bearer token."""
    ask, cid, tid = probe.ask, work["content_id"], work["task_id"]
    for path in (f"/writer/content/{cid}/edit", f"/writer/tasks/{tid}/modal", f"/writer/tasks/{tid}/stream",
                 *(f"/media/{key}" for key in work["media"])):
        ask("GET", path, {404})
    ask("POST", f"/writer/content/{cid}/edit", {404}, data={**form, "title": "Taken over"})
    ask("GET", f"/writer/content/{cid}", {404})
    for iid in work["image_ids"]:
        ask("POST", f"/writer/images/{iid}/text", {404}, data={**form, "alt_text": "Taken over"})
        ask("POST", f"/writer/images/{iid}/versions/1/activate", {404}, data=form)
        ask("POST", f"/writer/images/{iid}/versions/1/delete", {404}, data=form)
    for path in (f"/api/v1/writer/content/{cid}/html", f"/api/v1/writer/content/{cid}/export.zip"):
        ask("GET", path, {404}, headers=api)
        ask("GET", path, {404})  # the same with the session cookie
    ask("POST", f"/writer/content/{cid}/delete", {404}, data=form)
    for path in (f"/api/v1/system/settings/task_progress/{tid}/", f"/api/v1/tasks/{tid}/events"):
        ask("GET", path, {404}, headers=api)
        ask("GET", path, {404})  # the same with the session cookie
    ask("POST", f"/api/v1/tasks/{tid}/cancel", {404}, headers=api)
    ask("POST", GENERATE, {404}, headers=api, json={"content_id": cid})
    ask("POST", GENERATE, {404}, headers=api, json={"ids": work["image_ids"]})
    ask("POST", GENERATE, {404}, headers=api, json={"content_id": cid, "dry_run": True})
    ask("GET", f"/api/v1/writer/images/?content_id={cid}", {200}, headers=api)
    _run_routes_answer_404(probe, work, api, form)


def _run_routes_answer_404(probe: RouteProbe, work: dict, api: dict, form: dict) -> None:
    """Globex's run and articles through the bulk routes (API and pages): 404, nothing queued."""
    ask, rid, cid = probe.ask, work["run_id"], work["content_id"]
    for action in ("cancel", "retry"):
        ask("POST", f"/api/v1/runs/{rid}/{action}", {404}, headers=api)
    ask("GET", f"/api/v1/runs/{rid}/", {404}, headers=api)
    ask("GET", f"/api/v1/runs/{rid}/", {404})  # the same with the session cookie
    ask("POST", BULK, {404}, headers=api, json={"content_ids": [cid]})
    for path in (f"/writer/runs/{rid}", f"/writer/runs/{rid}/summary"):
        ask("GET", path, {404})
    for action in ("cancel", "retry"):
        ask("POST", f"/writer/runs/{rid}/{action}", {404}, data=form)
    for path in ("/writer/runs/confirm", "/writer/runs/"):  # the answer is a dialog saying "No article"
        body = ask("POST", path, {200}, data={**form, "scope": "selected", "content_ids": str(cid)})
        assert "No article with id" in body


def _article_and_image_routes_answer_404(probe: RouteProbe, work: dict, api: dict, own_image_id: int) -> None:
    """One article, one image, its regeneration and versions, by Globex's ids: 404, nothing changed.
    A version of Globex's named through the intruder's own image is no version of it either."""
    ask, cid, iid, vid = probe.ask, work["content_id"], work["image_ids"][0], work["version_id"]
    content, image = f"/api/v1/writer/content/{cid}/", f"/api/v1/writer/images/{iid}/"
    ask("GET", content, {404}, headers=api)
    ask("GET", content, {404})  # the same with the session cookie
    ask("PATCH", content, {404}, headers=api, json={"title": "Taken over"})
    ask("DELETE", content, {404}, headers=api)
    ask("POST", f"{content}images/", {404}, headers=api, json={"prompt": "Planted"})
    ask("GET", image, {404}, headers=api)
    ask("GET", image, {404})
    ask("PATCH", image, {404}, headers=api, json={"prompt": "Taken over", "alt_text": "Taken", "caption": "Taken"})
    ask("DELETE", f"/api/v1/writer/images/{work['image_ids'][1]}/", {404}, headers=api)
    ask("POST", f"{image}regenerate", {404}, headers=api, json={"prompt": "Taken over"})
    for image_path in (image, f"/api/v1/writer/images/{own_image_id}/"):
        ask("POST", f"{image_path}versions/{vid}/activate", {404}, headers=api)
        ask("DELETE", f"{image_path}versions/{vid}", {404}, headers=api)


def _intruders_own_lists_and_pages_show_nothing_of_globex(probe: RouteProbe, api: dict) -> None:
    for path in ("/", "/writer/images", "/writer/batches", "/writer/batches?page=2",
                 f"/writer/images?q={SECRET_TITLE.split()[0]}",
                 "/writer/images?status=generated", "/writer/content/new", "/settings/integrations",
                 "/settings/api-token", "/writer/usage", "/writer/usage?group=content"):
        probe.ask("GET", path, {200, 302}, follow_redirects=True)
    for group in ("day", "provider", "model", "content"):
        for fmt in ("json", "csv"):
            probe.ask("GET", f"/api/v1/usage/?group={group}&format={fmt}", {200}, headers=api)
    for path in ("/api/v1/writer/content/", "/api/v1/writer/images/", SETTINGS,
                 "/api/v1/system/integrations/openai/", "/api/v1/system/integrations/runware/", WEBHOOK,
                 f"{WEBHOOK}deliveries", f"{WEBHOOK}deliveries?page=1&per_page=100"):
        probe.ask("GET", path, {200}, headers=api)


def _sse_events(response) -> Iterator[tuple[str, dict]]:  # noqa: ANN001
    """(event name, data) of an open in-process SSE response, as they come (comments skipped)."""
    text = ""
    for chunk in response.response:
        text += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in text:
            block, text = text.split("\n\n", 1)
            lines = [line for line in block.splitlines() if not line.startswith(":") and ": " in line]
            fields = dict(line.split(": ", 1) for line in lines)
            if "data" in fields:
                yield fields.get("event", "message"), json.loads(fields["data"])


def _account_stream_shows_nothing_of_globex(probe: RouteProbe, client: FlaskClient, globex: Writer,
                                            intruder: Writer, work: dict) -> None:
    """The intruder's account stream (GET /api/v1/events), by cookie and by token: its snapshot and
    its live events show none of Globex's tasks, not even one that runs while it is open."""
    probe.asked.add(probe.adapter.match("/api/v1/events", method="GET")[0])
    with client.get("/api/v1/events", buffered=False) as by_cookie:
        assert by_cookie.status_code == 200
        name, snapshot = next(_sse_events(by_cookie))
        assert name == "snapshot" and snapshot["tasks"] == []
    intruder.configure(provider="local", model="placeholder", max_in_article_images=1)
    with client.get("/api/v1/events", headers=intruder.headers, buffered=False) as by_token:
        events = _sse_events(by_token)
        assert next(events)[0] == "snapshot"
        third = globex.write(f"{SECRET_TITLE} 3", featured_prompt=SECRET_PROMPT)
        running = globex.generate(third)
        assert globex.finished(running)["state"] == "SUCCESS"
        own = intruder.generate(intruder.write("Intruder's second", featured_prompt="Intruder's loaf"))
        seen = []
        for name, data in events:
            seen.append((name, data))
            if name == "task" and data["task_id"] == own and data["state"] == "SUCCESS":
                break
    assert {data["task_id"] for _, data in seen} == {own}
    leaked = [secret for secret in [*work["secrets"], running] if any(secret in json.dumps(d) for _, d in seen)]
    assert not leaked, f"the account stream revealed {leaked}"
    deleted = globex.client.delete(f"/api/v1/writer/content/{third['id']}/", headers=globex.headers)
    assert deleted.status_code == 200  # Globex's data is checked as it was at the end


def _intruders_writes_land_in_its_own_account(probe: RouteProbe, api: dict, form: dict) -> None:
    ask = probe.ask
    ask("PUT", SETTINGS, {200}, headers=api, json={"max_in_article_images": 5})
    ask("PUT", "/api/v1/system/integrations/runware/", {200}, headers=api, json={"model": "runware:101@1"})
    ask("POST", "/api/v1/writer/content/", {201}, headers=api, json={"title": "Intruder's own"})
    ask("POST", "/writer/content/new", {200, 302}, data={**form, "title": "Intruder's page article"})
    ask("POST", "/settings/integrations/image_generation", {200, 302},
        data={**form, "provider": "local", "model": "placeholder", "image_type": "realistic",
              "max_in_article_images": "3", "image_format": "webp", "desktop_enabled": "on"})
    ask("POST", "/settings/integrations/openai", {200, 302}, data={**form, "api_key": "", "model": "gpt-image-2"})
    ask("PUT", WEBHOOK, {200}, headers=api, json={"url": None})
    ask("POST", "/settings/integrations/webhook", {200, 302}, data={**form, "remove_webhook": "on"})
    ask("POST", "/settings/api-token", {200, 302}, data=form)
    ask("POST", "/settings/api-token/revoke", {200, 302}, data=form)


def _queue_dashboard_refuses_an_admin_who_is_no_operator(probe: RouteProbe, tid: str, form: dict) -> None:
    """The operators' queue dashboard and metrics: every route, 403 for an account admin who is not an operator."""
    for path in ("/rq/", "/rq/0/", "/rq/0/view", "/rq/0/view/queues", "/rq/0/view/workers", "/rq/0/view/jobs",
                 f"/rq/0/view/job/{tid}", "/rq/0/view/jobs/images/queued/10/asc/1", "/rq/0/data/queues.json",
                 "/rq/0/data/workers.json", f"/rq/0/data/job/{tid}.json",
                 "/rq/0/data/jobs/images/finished/10/asc/1.json",
                 "/rq/favicon.ico", "/rq/static/css/bootstrap.min.css", "/rq/requeue/images", "/metrics"):
        probe.ask("GET", path, {403}, follow_redirects=True)
    for path in (f"/rq/job/{tid}/delete", f"/rq/job/{tid}/requeue", "/rq/queue/images/finished/empty",
                 "/rq/queue/images/compact", "/rq/requeue/images"):
        probe.ask("POST", path, {403}, data=form)


def _public_routes_carry_no_account_data(probe: RouteProbe, intruder: Writer, form: dict) -> None:
    for path in ("/healthz", "/api/v1/openapi.json", "/static/css/app.css", "/login"):
        probe.ask("GET", path, {200, 302, 503})
    probe.ask("POST", "/logout", {302}, data=form)
    probe.ask("POST", "/login", {401}, data={"email": intruder.email, "password": "wrong", "csrf_token": intruder.csrf})


def _globex_data_is_as_it_was(globex: Writer, work: dict) -> None:
    assert [row["status"] for row in globex.images(work["content_id"])] == ["generated", "generated"]
    own = globex.client.get("/api/v1/writer/content/", headers=globex.headers).json["content"]
    assert {item["title"] for item in own} == {SECRET_TITLE, f"{SECRET_TITLE} 2"}
    assert globex.client.get(SETTINGS, headers=globex.headers).json["config"]["max_in_article_images"] == 1
    assert all(media_status(globex.client, key, globex.who) == 200 for key in work["media"])
    image = globex.client.get(f"/api/v1/writer/images/{work['image_ids'][0]}/", headers=globex.headers).json
    assert image == work["image"], "prompt, alt text, caption and versions as they were"
    assert len(globex.images(work["content_id"])) == 2
    hook = globex.client.get(WEBHOOK, headers=globex.headers).json
    assert hook["configured"] is True and hook["url"].endswith("/globex-confidential-hook")
    # Its first delivery is still its own (its run's tasks may have added theirs meanwhile).
    listed = globex.client.get(f"{WEBHOOK}deliveries", headers=globex.headers).json["deliveries"]
    assert listed[-1]["delivery"] == work["delivery"] and listed[-1]["event"] == "task.finished"


def test_every_route_refuses_another_accounts_ids_and_reveals_nothing(app: Flask, client: FlaskClient,
                                                                        accounts: Accounts, writer_for,
                                                                        worker):  # noqa: ANN001
    globex = writer_for(accounts.create("Globex"))
    work = _globex_work(globex)
    intruder = writer_for(accounts.create("Intruder", admin=True))  # an account admin, but no operator
    assert intruder.login().status_code == 302
    api, form = intruder.headers, {"csrf_token": intruder.csrf}
    probe = RouteProbe(app, client, work["secrets"])

    _routes_naming_globex_ids_answer_404(probe, work, api, form)
    own = intruder.write("Intruder's article", featured_prompt="Intruder's loaf")
    _article_and_image_routes_answer_404(probe, work, api, own["images"][0]["id"])
    _intruders_own_lists_and_pages_show_nothing_of_globex(probe, api)
    _account_stream_shows_nothing_of_globex(probe, client, globex, intruder, work)
    _intruders_writes_land_in_its_own_account(probe, api, form)
    _queue_dashboard_refuses_an_admin_who_is_no_operator(probe, work["task_id"], form)
    _public_routes_carry_no_account_data(probe, intruder, form)

    every = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert probe.asked == every, f"routes not asked: {sorted(every - probe.asked)}"
    _globex_data_is_as_it_was(globex, work)
