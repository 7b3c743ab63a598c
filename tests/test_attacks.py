"""Regression tests for the outside attack review (issue 11): the operator role, /media/ key
traversal, ids and pages that used to answer 500, terminal escapes in provider text, and fields
that were accepted without validation. Each failed before its fix."""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from rq import Queue

from igny8.cli.images import TerminalBars
from igny8.extensions import db
from igny8.models import Content
from igny8.providers.base import ImageRequest, ProviderError
from igny8.providers.runware_provider import RunwareProvider
from igny8.text import inert, plain
from tests.support.accounts import PASSWORD, csrf_token_from
from tests.support.writer import GENERATE, article, configure, finished, images

HOSTILE_TITLE = "Dash <img src=x onerror=\"document.title='XSSED'\">"


# ---------------------------------------------------------------- roles

def test_account_admin_is_not_an_operator_and_operators_are_granted_by_cli(app, client, auth, accounts, runner):
    admin = accounts.create("Other", admin=True)
    auth.login(admin["email"])
    assert client.get("/rq/0/data/queues.json").status_code == 403, "an account admin of B sees no jobs of A"
    assert client.get("/rq/").status_code == 403
    assert "Queue</a>" not in client.get("/writer/images").get_data(as_text=True), "no link to /rq"

    result = runner.invoke(args=["grant-operator", admin["email"]])
    assert result.exit_code == 0 and "now an operator" in result.output
    assert client.get("/rq/0/data/queues.json").status_code == 200
    assert "Queue</a>" in client.get("/writer/images").get_data(as_text=True)
    result = runner.invoke(args=["grant-operator", admin["email"], "--revoke"])
    assert result.exit_code == 0 and client.get("/rq/").status_code == 403

    assert runner.invoke(args=["grant-operator", "nobody@example.test"]).exit_code == 1
    made = runner.invoke(args=["create-user", "--email", "staff@example.test", "--operator"],
                         input="long enough pass\nlong enough pass\n")
    assert made.exit_code == 0 and "operator user staff@example.test" in made.output


def test_demo_user_is_admin_and_operator(app, runner):
    from igny8.accounts.auth import find_user_by_email
    from igny8.accounts.demo import DEMO_EMAIL

    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    with app.app_context():
        user = find_user_by_email(DEMO_EMAIL)
        assert user.is_admin and user.is_operator
        db.session.remove()


# ---------------------------------------------------------------- what goes into RQ jobs

def test_job_description_and_meta_carry_no_markup(app, client, acme):
    configure(client, acme, provider="local", model="placeholder")
    content = article(client, acme, in_article=1, title=HOSTILE_TITLE)
    task_id = client.post(GENERATE, json={"content_id": content["id"]}, headers=acme["headers"]).json["task_id"]
    job = Queue("images", connection=app.extensions["rq_redis"]).fetch_job(task_id)
    text = job.description + json.dumps(job.meta, ensure_ascii=False)
    assert "<" not in text and ">" not in text
    assert "Dash ‹img src=x" in job.description, "still readable for the operator"
    # the writer's own pages and the API keep the title exactly as typed (escaped by Jinja / JSON)
    listed = client.get("/api/v1/writer/content/", headers=acme["headers"]).json["content"]
    assert listed[0]["title"] == HOSTILE_TITLE


def test_inert_and_plain_take_out_markup_and_terminal_controls():
    assert inert("a <b> c") == "a ‹b› c"
    assert plain("ok\x1b[2J\x1b[31mred\x1b[0m\x07\x00\x9b done\ttab\nline") == "okred done\ttab\nline"
    assert plain("\x1b]0;owned title\x07after") == "after"
    assert plain("x" * 50, 10) == "x" * 9 + "…"


# ---------------------------------------------------------------- /media/ traversal

TRAVERSALS = ("a{me}/%2e%2e/{key}", "a{me}/..%2f{key}", "a{me}%2f..%2f{key}", "a{me}/%2E%2E/{key}",
              "a{me}/%2e%2e%2f{key}", "a{me}/./../{key}", "a{me}/%2e/%2e%2e/{key}", "a{me}//../{key}",
              "a{me}/..%5c{key}", "a{me}\\..\\{key}", "a{me}/%252e%252e/{key}")


def _foreign_media_key(client, globex) -> str:  # noqa: ANN001
    configure(client, globex, provider="local", model="placeholder", max_in_article_images=0)
    content = article(client, globex, in_article=0, title="Globex secret")
    task_id = client.post(GENERATE, json={"content_id": content["id"]}, headers=globex["headers"]).json["task_id"]
    assert finished(client, globex, task_id)["state"] == "SUCCESS"
    return images(client, globex, content["id"])[0]["image_url"].removeprefix("/media/")


def test_media_keys_with_dot_segments_answer_404_in_every_encoding(client, acme, globex, worker, live_server):
    key = _foreign_media_key(client, globex)
    with client.get(f"/media/{key}", headers=globex["headers"]) as own:
        assert own.status_code == 200, "the owner gets the file"
    host = urlsplit(live_server.url).netloc
    for pattern in TRAVERSALS:
        path = "/media/" + pattern.format(me=acme["account_id"], key=key)
        with client.get(path, headers=acme["headers"]) as response:
            assert response.status_code == 404, path
        # the same over the wire: http.client sends the path as written (no client-side clean-up)
        connection = http.client.HTTPConnection(host, timeout=10)
        connection.request("GET", path.replace("\\", "%5c"), headers=acme["headers"])
        answer = connection.getresponse()
        body = answer.read()
        connection.close()
        assert answer.status == 404 and not body.startswith(b"RIFF"), path


# ---------------------------------------------------------------- ids and pages

def test_huge_ids_and_pages_never_answer_500(client, auth, acme, accounts):
    auth.login(acme["email"])
    huge = "99999999999999999999"
    assert client.get(f"/writer/content/{huge}/edit").status_code == 404
    assert client.post(f"/writer/content/{huge}/delete", data={"csrf_token": auth.csrf}).status_code == 404
    assert client.get("/writer/content/0/edit").status_code == 404
    for page in (huge, "-5", "0", "abc", "2"):
        response = client.get(f"/writer/images?page={page}")
        assert response.status_code == 200, page
    configure(client, acme, provider="local", model="placeholder")
    for i in range(3):
        article(client, acme, in_article=0, title=f"Paged {i}")
    client.application.config["IMAGES_PER_PAGE"] = 2
    last = client.get(f"/writer/images?page={huge}").get_data(as_text=True)
    assert "Paged 0" in last and "Paged 2" not in last, "a page past the end shows the last page"


def test_dashboard_actions_on_a_deleted_job_answer_404_not_500(app, client, auth, acme, accounts):
    accounts.make_operator(acme)
    configure(client, acme, provider="local", model="placeholder")
    content = article(client, acme, in_article=0)
    task_id = client.post(GENERATE, json={"content_id": content["id"]}, headers=acme["headers"]).json["task_id"]
    auth.login(acme["email"])
    same_site = {"Origin": "http://localhost"}
    assert client.post(f"/rq/job/{task_id}/requeue", headers=same_site).status_code == 409, "queued, not failed"
    Queue("images", connection=app.extensions["rq_redis"]).fetch_job(task_id).delete()
    json_view = client.get(f"/rq/0/data/job/{task_id}.json")
    assert json_view.status_code == 404 and json_view.json["success"] is False
    assert client.get(f"/rq/0/view/job/{task_id}").status_code == 404
    assert client.post(f"/rq/job/{task_id}/requeue", headers=same_site).status_code == 404
    assert client.get("/rq/0/data/job/no-such-job.json").status_code == 404
    # URLs naming no instance, registry, order, page size or queue: 404 where the package raised
    for path in ("/rq/5/view/jobs", "/rq/99999999999999999999/view/queues",
                 "/rq/0/data/jobs/images/bogus/10/asc/1.json", "/rq/0/data/jobs/images/queued/0/asc/1.json",
                 "/rq/0/data/jobs/images/queued/x/asc/1.json", "/rq/0/view/jobs/images/queued/10/up/1",
                 "/rq/0/data/jobs/images/queued/10/asc/99999999999999999.json"):
        assert client.get(path).status_code == 404, path
    for path in ("/rq/queue/nosuch/compact", "/rq/queue/nosuch/finished/empty", "/rq/queue/images/bogus/empty",
                 "/rq/requeue/nosuch"):
        assert client.post(path, headers=same_site).status_code == 404, path


# ---------------------------------------------------------------- terminal escapes

class _HostileRunware(BaseHTTPRequestHandler):
    """Answers every task with Runware's error shape, its message full of terminal escapes."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"errors": [{"code": "invalidPrompt\x1b[2J",
                                       "message": "bad \x1b[31mprompt\x1b[0m\x07\x1b]0;owned\x07 \x9b6n"}]}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


def test_provider_error_text_is_stored_and_printed_without_control_characters():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HostileRunware)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        provider = RunwareProvider(api_key="rw-test-key-123", model="runware:100@1",
                                   base_url=f"http://127.0.0.1:{server.server_port}/v1", timeout=5)
        with pytest.raises(ProviderError) as caught:
            provider.generate(ImageRequest(prompt="p", negative_prompt="", width=1024, height=1024,
                                           model="runware:100@1", output_format="webp"))
    finally:
        server.shutdown()
        server.server_close()
    message = caught.value.message
    assert "Runware said: bad prompt" in message
    assert not any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f for c in message), repr(message)
    line = TerminalBars.line({"image_id": 1, "index": 1, "label": "Featured Image", "status": "failed",
                              "progress": 0, "error": "old row \x1b]0;owned\x07\x1b[2J text"})
    assert "\x1b]" not in line and "\x1b[2J" not in line and "old row  text" in line


# ---------------------------------------------------------------- fields

@pytest.mark.parametrize("status", [{"$ne": 1}, ["draft"], 1, "deleted", ""])
def test_article_status_is_validated_and_a_refused_request_writes_nothing(app, client, acme, status):
    response = client.post("/api/v1/writer/content/", json={"title": "Injected", "status": status},
                           headers=acme["headers"])
    assert response.status_code == 400 and "status" in response.json["errors"]
    with app.app_context():
        assert db.session.scalars(db.select(Content)).all() == []
        db.session.remove()


def test_article_status_accepts_its_values(client, acme):
    created = client.post("/api/v1/writer/content/", json={"title": "Live", "status": "published"},
                          headers=acme["headers"])
    assert created.status_code == 201 and created.json["status"] == "published"
    default = client.post("/api/v1/writer/content/", json={"title": "Draft"}, headers=acme["headers"])
    assert default.json["status"] == "draft"



def test_only_account_admins_change_settings_and_keys(client, auth, accounts, acme):
    writer = accounts.create("Writers Inc", admin=False)
    for path, body in (("/api/v1/system/integrations/image_generation/", {"max_in_article_images": 5}),
                       ("/api/v1/system/integrations/openai/", {"api_key": "sk-writer-swapped-key"})):
        refused = client.put(path, json=body, headers=writer["headers"])
        assert refused.status_code == 403 and "admin" in refused.json["error"]
        assert client.get(path, headers=writer["headers"]).status_code == 200, "reading is fine"
    assert client.get("/api/v1/system/integrations/openai/", headers=writer["headers"]).json["configured"] is False
    auth.login(writer["email"])
    page = client.get("/settings/integrations").get_data(as_text=True)
    assert "Only an admin of your account" in page and "disabled" in page
    form = {"csrf_token": auth.csrf, "provider": "local", "model": "placeholder", "image_type": "realistic",
            "max_in_article_images": "3", "image_format": "webp"}
    assert client.post("/settings/integrations/image_generation", data=form).status_code == 403
    assert client.post("/settings/integrations/openai", data={"csrf_token": auth.csrf, "api_key": "sk-x-12345678"}
                       ).status_code == 403
    assert client.put("/api/v1/system/integrations/image_generation/", json={"max_in_article_images": 5},
                      headers=acme["headers"]).status_code == 200, "an admin may"


@pytest.mark.parametrize("target", ["//evil.test/", "/\\evil.test/", "/\\/evil.test", "/%09/evil.test",
                                    "/\t/evil.test", "https://evil.test/", "/\\\\evil.test"])
def test_login_never_redirects_to_another_site(client, acme, target):
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", query_string={"next": target},
                           data={"email": acme["email"], "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert urlsplit(location).netloc in ("", "localhost") and "\\" not in location and "\t" not in location
    assert not location.startswith("//") and "evil.test" not in urlsplit(location).netloc, location
