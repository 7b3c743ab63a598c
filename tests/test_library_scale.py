"""The Images page of a large library: the account totals kept by the database match the rows
through every kind of write, and the pager stays a handful of links however many pages there are."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, insert, select, update

from igny8.content.articles import account_totals
from igny8.extensions import db
from igny8.models import Account, Content, Image, utcnow
from igny8.views.pager import page_window

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/"  # the PostgreSQL this machine and CI run


def _truth(account_id: int) -> dict:
    """The totals computed from the rows themselves."""
    articles = db.session.scalar(select(func.count()).select_from(Content).filter_by(account_id=account_id))
    generated, failed, cost = db.session.execute(
        select(func.count().filter(Image.status == "generated"), func.count().filter(Image.status == "failed"),
               func.coalesce(func.sum(Image.cost), 0.0)).where(Image.account_id == account_id)).one()
    return {"articles": articles, "generated": generated, "failed": failed, "cost": round(float(cost), 6)}


def _kept(account_id: int) -> dict:
    kept = account_totals(account_id)
    return {**kept, "cost": round(kept["cost"], 6)}


def _add_articles(account_id: int, count: int, images_each: int = 3) -> list[int]:
    now = utcnow()
    first = (db.session.scalar(select(func.max(Content.id))) or 0) + 1
    db.session.execute(insert(Content), [{"id": first + n, "account_id": account_id, "title": f"Article {n}",
                                          "html": "", "status": "draft", "created_at": now, "updated_at": now}
                                         for n in range(count)])
    db.session.execute(insert(Image), [
        {"account_id": account_id, "content_id": first + n, "type": "featured" if p == 0 else "in_article",
         "position": p, "prompt": f"prompt {n}-{p}", "status": ("generated", "pending", "failed")[(n + p) % 3],
         "cost": 0.04 if (n + p) % 3 == 0 else 0.0, "attempts": 0, "placeholder": False,
         "created_at": now, "updated_at": now}
        for n in range(count) for p in range(images_each)])
    db.session.commit()
    return list(range(first, first + count))


def test_account_totals_follow_every_write_of_the_rows(app, acme, globex):
    with app.app_context():
        assert _kept(acme["account_id"]) == {"articles": 0, "generated": 0, "failed": 0, "cost": 0.0}
        ids = _add_articles(acme["account_id"], 30)  # bulk inserts
        _add_articles(globex["account_id"], 7)
        assert _kept(acme["account_id"]) == _truth(acme["account_id"])
        db.session.execute(update(Image).where(Image.content_id.in_(ids[:10]))  # a bulk status change
                           .values(status="generated", cost=Image.cost + 0.01))
        db.session.commit()
        image = db.session.scalars(select(Image).filter_by(account_id=acme["account_id"], status="pending")).first()
        image.status, image.cost = "failed", 0.5  # an ORM change, as the runner makes
        db.session.commit()
        db.session.delete(db.session.get(Content, ids[-1]))  # an article with its images (cascade)
        db.session.commit()
        db.session.execute(Image.__table__.delete().where(Image.content_id == ids[-2]))  # raw SQL delete
        db.session.commit()
        for account in (acme, globex):
            assert _kept(account["account_id"]) == _truth(account["account_id"]), account["account_id"]
        assert _kept(globex["account_id"])["articles"] == 7  # the other account's rows never count


def test_a_generated_batch_and_an_article_through_the_api_are_counted(client, acme):
    created = client.post("/api/v1/writer/content/", json={"title": "Totals", "featured_prompt": "A",
                                                           "in_article_prompts": ["B", "C"]}, headers=acme["headers"])
    assert created.status_code == 201
    with client.application.app_context():
        assert _kept(acme["account_id"]) == _truth(acme["account_id"]) == {
            "articles": 1, "generated": 0, "failed": 0, "cost": 0.0}


@pytest.mark.parametrize(("page", "pages", "expected"), [
    (1, 1, [1]),
    (1, 5, [1, 2, 3, None, 5]),
    (3, 5, [1, 2, 3, 4, 5]),
    (1, 2500, [1, 2, 3, None, 2500]),
    (1250, 2500, [1, None, 1248, 1249, 1250, 1251, 1252, None, 2500]),
    (2500, 2500, [1, None, 2498, 2499, 2500]),
])
def test_the_pager_shows_first_last_and_a_few_around_the_current_page(page, pages, expected):
    assert page_window(page, pages) == expected


def test_the_first_page_is_the_same_size_for_600_or_6000_articles(app, client, auth, accounts):
    """One link per page made the first page grow with the library (2,500 links at 50,000
    articles); now its size does not depend on the number of articles."""
    small, large = accounts.create("Small"), accounts.create("Large")
    with app.app_context():
        _add_articles(small["account_id"], 600, images_each=1)
        _add_articles(large["account_id"], 6000, images_each=1)
    sizes, links = {}, {}
    for who in (small, large):
        if auth.csrf:
            client.post("/logout", data={"csrf_token": auth.csrf})
        auth.login(who["email"])
        page = client.get("/writer/images").get_data(as_text=True)
        nav = re.search(r'<nav class="pagination".*?</nav>', page, re.S).group(0)
        links[who["email"]] = nav.count("<a ")
        sizes[who["email"]] = len(page.encode())
        assert "Next ›" in nav and "page 1 of" in nav
    assert links[large["email"]] <= 6  # first, a couple around, last, next
    # only the numbers differ (ids and counts one digit longer); one link per page was +70 KB here
    assert abs(sizes[large["email"]] - sizes[small["email"]]) < 1500, sizes
    with app.app_context():
        assert db.session.get(Account, large["account_id"]) is not None


def _flask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "igny8", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database(request, tmp_path) -> Iterator[str]:  # noqa: ANN001
    """An empty database of each kind (PostgreSQL: a database of its own, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    name = f"igny8_migration_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_SERVER + "postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_SERVER + name
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_the_migration_fills_the_totals_of_existing_libraries_then_the_triggers_keep_them(fresh_database,
                                                                                          redis_server):
    env = dict(os.environ, DATABASE_URL=fresh_database, REDIS_URL=redis_server.url)
    assert _flask(env, "db", "upgrade", "7c1e4a2b9d10").returncode == 0  # the schema before the totals
    engine = create_engine(fresh_database)
    now = utcnow()
    with engine.begin() as connection:
        for account_id in (1, 2):
            connection.execute(insert(Account.__table__), [{"id": account_id, "name": f"A{account_id}",
                                                            "created_at": now}])
            connection.execute(insert(Content.__table__), [
                {"id": account_id * 100 + n, "account_id": account_id, "title": f"T{n}", "html": "",
                 "status": "draft", "created_at": now, "updated_at": now} for n in range(5 * account_id)])
            connection.execute(insert(Image.__table__), [
                {"account_id": account_id, "content_id": account_id * 100 + n, "type": "featured", "position": 0,
                 "prompt": "p", "status": ("generated", "failed", "pending")[n % 3], "cost": 0.04 * (n % 3 == 0),
                 "attempts": 0, "placeholder": False, "created_at": now, "updated_at": now}
                for n in range(5 * account_id)])
    upgrade = _flask(env, "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    rows = {}
    with engine.begin() as connection:
        connection.execute(update(Image.__table__).where(Image.__table__.c.content_id == 101)
                           .values(status="generated", cost=0.5))  # a write after the migration
        for row in connection.exec_driver_sql("SELECT account_id, articles, generated, failed, cost "
                                              "FROM account_totals ORDER BY account_id"):
            rows[row[0]] = (row[1], row[2], row[3], round(row[4], 6))
    engine.dispose()
    assert rows == {1: (5, 3, 1, 0.58), 2: (10, 4, 3, 0.16)}  # article 101: failed -> generated, $0.50
    downgrade = _flask(env, "db", "downgrade", "7c1e4a2b9d10")
    assert downgrade.returncode == 0, downgrade.stderr
    assert _flask(env, "db", "upgrade").returncode == 0
