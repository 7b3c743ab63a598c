"""The live pages in Debian's Chromium (Playwright): one account stream per tab moves the Images
page's cards, the tab title and the Batches page's rows, whatever started the work (the JSON API,
the command line), with the modal closed; the Batches page reopens a batch's live modal."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.support.browser import watched_page
from tests.support.cli import run_cli
from tests.support.streams import account_streams_freed
from tests.support.writer import GENERATE, article, configure, finished

pytestmark = pytest.mark.browser
RUNNING_TITLE = re.compile(r"^\(\d+/\d+\) ")


@pytest.fixture
def app_config(app_config: dict) -> dict:
    """Keepalives every second: a stream whose client left is freed within a second or two."""
    return {**app_config, "STREAM_KEEPALIVE_SECONDS": 1.0}


@pytest.fixture(autouse=True)
def _streams_freed(app):  # noqa: ANN001, ANN202
    yield
    account_streams_freed(app)


@pytest.fixture
def page(browser, live_server, acme):  # noqa: ANN001, ANN201
    """A logged-in page (as tests.support.browser's), allowed to notify; it leaves the app before its
    context closes."""
    with watched_page(browser, live_server, acme, permissions=["notifications"]) as page:
        yield page
        page.goto("about:blank")  # the account stream ends before the server stops


def live(page) -> None:  # noqa: ANN001
    expect(page.locator("body[data-live=connected]")).to_have_count(1, timeout=10000)


def test_images_page_follows_work_from_the_api_and_the_cli_with_the_modal_closed(page, client, acme, start_worker,
                                                                                 worker_env):
    configure(client, acme, provider="local", model="placeholder", max_in_article_images=2)
    start_worker(LOCAL_PROVIDER_LATENCY="0.6")
    by_api = article(client, acme, in_article=2, title="Started through the API")
    by_cli = article(client, acme, in_article=2, title="Started on the command line")
    page.reload()
    live(page)
    base_title = page.title()
    assert not RUNNING_TITLE.match(base_title)

    response = client.post(GENERATE, json={"content_id": by_api["id"]}, headers=acme["headers"])
    assert response.status_code == 202
    card = page.locator(f"#article-{by_api['id']}")
    expect(page.locator(f"#generate-{by_api['id']}")).to_contain_text("generating…", timeout=10000)
    expect(page).to_have_title(RUNNING_TITLE, timeout=10000)
    expect(card.locator(".cell-progress").first).to_be_attached(timeout=10000)
    expect(card.locator("img.thumb")).to_have_count(3, timeout=30000)
    expect(card.locator(".badge.generated")).to_have_count(3)
    expect(page).to_have_title(base_title, timeout=10000)
    finished(client, acme, response.json["task_id"])

    queued = run_cli(worker_env, "images", "generate", "--content", str(by_cli["id"]), "--no-wait")
    assert queued.returncode == 0, queued.stderr
    expect(page).to_have_title(RUNNING_TITLE, timeout=10000)
    cli_card = page.locator(f"#article-{by_cli['id']}")
    expect(cli_card.locator("img.thumb")).to_have_count(3, timeout=30000)
    expect(cli_card.locator(".badge.generated")).to_have_count(3)
    expect(page).to_have_title(base_title, timeout=10000)
    expect(page.locator("[data-modal]")).to_have_count(0)  # all of it with the modal closed


def test_article_page_image_cards_follow_a_batch_started_elsewhere(page, client, acme, live_server, worker):
    configure(client, acme, provider="local", model="placeholder", max_in_article_images=1)
    content = article(client, acme, in_article=1, title="Watched on its page")
    page.goto(f"{live_server.url}/writer/content/{content['id']}")
    live(page)
    assert client.post(GENERATE, json={"content_id": content["id"]}, headers=acme["headers"]).status_code == 202
    expect(page.locator(".image-card [data-image-status].generated")).to_have_count(2, timeout=30000)
    expect(page.locator(".image-card .versions img.thumb")).to_have_count(2, timeout=10000)


def test_batches_page_lists_batches_live_and_reopens_the_modal(page, client, acme, live_server, start_worker):
    configure(client, acme, provider="local", model="placeholder", max_in_article_images=2)
    first = client.post(GENERATE, json={"content_id": article(client, acme, in_article=2, title="First")["id"]},
                        headers=acme["headers"]).json["task_id"]  # no worker yet: it waits
    page.goto(f"{live_server.url}/writer/batches")
    live(page)
    row = page.locator(f"[data-task-row='{first}']")
    expect(row).to_contain_text("First")
    expect(row).to_contain_text(acme["email"])
    expect(row).to_contain_text("API")
    expect(row.locator("[data-field=state]")).to_have_text("pending")
    start_worker(LOCAL_PROVIDER_LATENCY="0.3")
    expect(row.locator("[data-field=state]")).to_have_text("success", timeout=30000)  # live, no reload
    expect(row.locator("[data-field=completed]")).to_have_text("3")
    expect(row.locator("[data-field=outcome]")).to_have_text("generated")

    second = client.post(GENERATE, json={"content_id": article(client, acme, in_article=1, title="Second")["id"]},
                         headers=acme["headers"]).json["task_id"]
    expect(page.locator(f"[data-task-row='{second}']")).to_be_visible(timeout=10000)  # a new batch appears
    expect(page.locator("[data-task-row]").first).to_have_attribute("data-task-row", second)  # newest first

    row.locator("[data-view-task]").click()
    expect(page.locator("[data-modal] .queue-item")).to_have_count(3)
    expect(page.locator(".modal-footer[data-finished]")).to_contain_text("3 generated", timeout=10000)
    page.keyboard.press("Escape")

    toggle = page.locator("[data-notify-toggle]")
    expect(toggle).to_be_visible()
    toggle.click()
    expect(toggle).to_have_text("Notifications on")
    expect(toggle).to_have_attribute("aria-pressed", "true")
