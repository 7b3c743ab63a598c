"""Bulk runs in Debian's Chromium (Playwright), against the app on a real HTTP server and a real
worker with the local provider: five articles chosen on the Images page, the confirmation dialog,
the run page updating until the run is done; and a run cancelled mid-way."""

from __future__ import annotations

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from igny8.extensions import db
from igny8.models import Image
from tests.support.browser import open_page

pytestmark = pytest.mark.browser


def five_articles(writer) -> list[dict]:  # noqa: ANN001
    writer.configure(provider="local", model="placeholder", max_in_article_images=1)
    return [writer.article(in_article=1, title=f"Bulk <b>article</b> {n}") for n in range(5)]


def choose_and_confirm(page: Page, contents: list[dict]) -> None:
    for content in contents:
        page.check(f"#article-{content['id']} .bulk-check")
    page.click("[data-bulk-selected]")
    expect(page.locator("[data-bulk-figures]")).to_contain_text("Generate 10 images for 5 articles?")
    page.click("[data-create-run]")
    page.wait_for_url("**/writer/runs/*")


def test_five_articles_chosen_confirmed_and_watched_until_done(browser, live_server, acme, writer, start_worker,
                                                                app: Flask):
    contents = five_articles(writer)
    start_worker(LOCAL_PROVIDER_LATENCY="0.2")
    page = open_page(browser, live_server, acme, 1280)
    expect(page.locator(".bulk-check")).to_have_count(5)
    # Counts the run page's refreshes asked by the account stream (live.js), not by the 10 s fallback.
    page.add_init_script("window.__moved = 0; document.addEventListener('igny8:run-moved', "
                         "function () { window.__moved += 1; });")
    choose_and_confirm(page, contents)
    summary = page.locator("#run-summary")
    expect(summary).to_have_attribute("data-run-state", "finished", timeout=30_000)
    assert page.evaluate("window.__moved") >= 1, "the account stream moved the run page"
    expect(page.locator("[data-run-figures]")).to_contain_text("10 of 10 images")
    expect(page.locator("[data-run-figures]")).to_contain_text("5 of 5 articles done")
    expect(page.locator("tr[data-run-task]")).to_have_count(5)
    expect(page.locator("tr[data-run-task]").first).to_contain_text("Bulk <b>article</b>")  # text, not markup
    page.locator("tr[data-run-task] [data-view-task]").first.click()
    expect(page.locator("[data-modal] .queue-item")).to_have_count(2)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).where(Image.status == "generated")) == 10
    page.context.close()


def test_a_run_is_cancelled_mid_way(browser, live_server, acme, writer, start_worker, app: Flask):
    contents = five_articles(writer)
    start_worker(LOCAL_PROVIDER_LATENCY="0.5")
    page = open_page(browser, live_server, acme, 1280)
    choose_and_confirm(page, contents)
    expect(page.locator("#run-summary")).to_have_attribute("data-run-state", "running", timeout=20_000)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-cancel-run]")
    expect(page.locator("#run-summary")).to_have_attribute("data-run-state", "cancelled", timeout=20_000)
    expect(page.locator("[data-run-badge]")).to_have_text("cancelled")
    with app.app_context():
        statuses = list(db.session.scalars(db.select(Image.status)))
        assert "queued" not in statuses and "processing" not in statuses and "pending" in statuses
    page.context.close()
