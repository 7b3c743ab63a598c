"""The migrations build exactly the schema of the models (what `make run` relies on)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent


def flask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "igny8", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_upgrade_from_empty_matches_the_models(tmp_path, redis_server):
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.db'}", REDIS_URL=redis_server.url)
    upgrade = flask(env, "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    check = flask(env, "db", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr
    seeded = flask(env, "seed-demo")
    assert seeded.returncode == 0 and "demo@igny8.test" in seeded.stdout


@pytest.fixture
def migration_database(tmp_path: Path) -> Iterator[str]:
    """The test database, empty (PostgreSQL with ``DATABASE_URL``, emptied before and after: the
    next test's ``drop_all`` expects the models' schema or none), else a new SQLite file."""
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{tmp_path / 'old.db'}"
    _empty(url)
    yield url
    _empty(url)


def _empty(url: str) -> None:
    if url.startswith("postgresql"):
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA public CASCADE")
            connection.exec_driver_sql("CREATE SCHEMA public")
        engine.dispose()


OLD_IMAGES = [  # (id, status, desktop_path, mobile_path, cost): two generated, one failed, one never made
    (1, "generated", "a1/2026/12/loaf-featured-1a2b.webp", "a1/2026/12/loaf-featured-1a2b-mobile.webp", 0.04),
    (2, "generated", "a1/2026/12/step-1-9f8e.png", None, 0.08),
    (3, "failed", None, None, 0.02),
    (4, "pending", None, None, 0.0),
]


def _seed_before_versions(engine: sa.Engine) -> None:
    now = "2026-12-01 10:00:00"
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO account (id, name, created_at) VALUES (1, 'Acme', :now)"), {"now": now})
        connection.execute(sa.text("INSERT INTO content (id, account_id, title, html, status, created_at, updated_at)"
                                   " VALUES (1, 1, 'Loaves', '', 'draft', :now, :now)"), {"now": now})
        for image_id, status, desktop, mobile, cost in OLD_IMAGES:
            connection.execute(sa.text(
                "INSERT INTO image (id, account_id, content_id, type, position, prompt, status, image_url, mobile_url,"
                " desktop_path, mobile_path, width, height, format, bytes, provider, model, placeholder, attempts,"
                " cost, created_at, updated_at, generated_at) VALUES (:id, 1, 1, :type, :position, :prompt, :status,"
                " :url, :murl, :desktop, :mobile, :w, :h, :fmt, 1000, 'openai', 'gpt-image-2', false, 1, :cost,"
                " :now, :now, :generated)"),
                {"id": image_id, "type": "featured" if image_id == 1 else "in_article", "position": image_id - 1,
                 "prompt": f"Prompt {image_id}", "status": status, "desktop": desktop, "mobile": mobile,
                 "url": desktop and f"/media/{desktop}", "murl": mobile and f"/media/{mobile}",
                 "w": desktop and 1536, "h": desktop and 1024, "fmt": desktop and desktop.rsplit(".", 1)[1],
                 "cost": cost, "now": now, "generated": desktop and now})


def test_upgrade_turns_each_generated_image_into_its_active_first_version(migration_database, redis_server):
    url = migration_database
    env = dict(os.environ, DATABASE_URL=url, REDIS_URL=redis_server.url)
    before = flask(env, "db", "upgrade", "9b3f6d2e4a17")
    assert before.returncode == 0, before.stderr
    engine = sa.create_engine(url)
    try:
        _seed_before_versions(engine)
        upgrade = flask(env, "db", "upgrade")
        assert upgrade.returncode == 0, upgrade.stderr
        with engine.connect() as connection:
            versions = connection.execute(sa.text(
                "SELECT id, account_id, image_id, desktop_path, mobile_path, image_url, mobile_url, width, format,"
                " provider, model, prompt, cost, created_at FROM image_version ORDER BY image_id")).all()
            images = dict(connection.execute(sa.text("SELECT id, active_version_id FROM image")).all())
        generated = [row for row in OLD_IMAGES if row[2]]
        assert [(v.image_id, v.desktop_path, v.mobile_path, v.cost) for v in versions] == [
            (image_id, desktop, mobile, cost) for image_id, _status, desktop, mobile, cost in generated]
        assert all(v.account_id == 1 and v.provider == "openai" and v.model == "gpt-image-2" and v.width == 1536
                   for v in versions)
        assert versions[0].image_url == f"/media/{generated[0][2]}" and versions[1].mobile_url is None
        assert [v.prompt for v in versions] == ["Prompt 1", "Prompt 2"] and versions[1].format == "png"
        assert images == {1: versions[0].id, 2: versions[1].id, 3: None, 4: None}
        _assert_totals_still_kept(engine)
        check = flask(env, "db", "check")
        assert "No new upgrade operations detected" in check.stdout + check.stderr
        down = flask(env, "db", "downgrade", "9b3f6d2e4a17")
        assert down.returncode == 0, down.stderr
        with engine.connect() as connection:
            assert "image_version" not in sa.inspect(connection).get_table_names()
            kept = connection.execute(sa.text("SELECT desktop_path FROM image WHERE id = 1")).scalar()
        assert kept == generated[0][2], "a downgrade keeps the files of the active version on the image"
        _assert_totals_still_kept(engine)
    finally:
        engine.dispose()


def _assert_totals_still_kept(engine: sa.Engine) -> None:
    """The account's totals are still kept by the triggers (SQLite rebuilds the table for a new key)."""
    def generated() -> int:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT generated FROM account_totals WHERE account_id = 1")).scalar()

    start = generated()
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE image SET status = 'generated' WHERE id = 4"))
    assert generated() == start + 1
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE image SET status = 'pending' WHERE id = 4"))
    assert generated() == start
