"""The Batches page (/writer/batches) and what it shows of each task: who started it and from
where (a page's session, the JSON API, the command line), newest first, paged, the account's only."""

from __future__ import annotations

import re

from sqlalchemy import select

from igny8.extensions import db
from igny8.models import GenerationTask
from tests.support.writer import GENERATE


def _task(app, task_id: str) -> GenerationTask:  # noqa: ANN001
    with app.app_context():
        task = db.session.scalar(select(GenerationTask).filter_by(id=task_id))
        db.session.expunge(task)
        return task


def test_a_task_records_who_started_it_and_from_where(app, client, runner, writer, acme):
    writer.configure(provider="local", model="placeholder", max_in_article_images=1)
    by_api = writer.generate(writer.article(in_article=1, title="By API"))
    writer.login()
    page_article = writer.article(in_article=1, title="By page")
    by_page = client.post(GENERATE, json={"content_id": page_article["id"]}, headers={"X-CSRFToken": writer.csrf})
    assert by_page.status_code == 202
    cli_article = writer.article(in_article=1, title="By CLI")
    result = runner.invoke(args=["images", "generate", "--content", str(cli_article["id"]), "--no-wait"])
    assert result.exit_code == 0, result.output
    by_cli = re.search(r"task (\w+)", result.output).group(1)
    origins = {task_id: (_task(app, task_id).user_id, _task(app, task_id).source)
               for task_id in (by_api, by_page.json["task_id"], by_cli)}
    assert origins == {by_api: (acme["user_id"], "api"), by_page.json["task_id"]: (acme["user_id"], "web"),
                       by_cli: (None, "cli")}
    page = client.get("/writer/batches").get_data(as_text=True)
    for task_id, where in ((by_api, "API"), (by_page.json["task_id"], "web page"), (by_cli, "command line")):
        row = re.search(rf'<tr data-task-row="{task_id}">(.*?)</tr>', page, re.S).group(1)
        assert where in row and "View" in row
    assert page.count(acme["email"]) >= 3  # two rows and the header's login


def test_batches_are_newest_first_paged_and_the_accounts_own(app, client, writer, writer_for, globex):
    app.config["BATCHES_PER_PAGE"] = 2
    writer.configure(provider="local", model="placeholder", max_in_article_images=1)
    ids = [writer.generate(writer.article(in_article=1, title=f"Batch {n}")) for n in range(3)]
    other = writer_for(globex)
    other.configure(provider="local", model="placeholder", max_in_article_images=1)
    foreign = other.generate(other.article(in_article=1, title="Globex batch"))
    writer.login()

    def rows(query: str = "", **headers: str) -> list[str]:
        response = client.get(f"/writer/batches{query}", headers=headers)
        assert response.status_code == 200
        return re.findall(r'data-task-row="(\w+)"', response.get_data(as_text=True))

    assert rows() == [ids[2], ids[1]]
    assert rows("?page=2") == [ids[0]]
    assert rows("?page=abc") == [ids[2], ids[1]], "not a number: the first page"
    assert rows("?page=99") == [ids[0]], "past the end: the last page"
    assert rows("?page=-3") == [ids[2], ids[1]]
    fragment = client.get("/writer/batches?page=2", headers={"HX-Request": "true"})
    assert fragment.get_data(as_text=True).lstrip().startswith("<div id=\"batches-table\"")
    assert "HX-Request" in fragment.headers["Vary"]
    page = client.get("/writer/batches").get_data(as_text=True)
    assert foreign not in page and "Globex batch" not in page
    assert 'href="/writer/batches"' in page and 'aria-current="page">Batches' in page  # the nav link


def test_batches_page_needs_a_login(client):
    response = client.get("/writer/batches")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
