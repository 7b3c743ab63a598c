"""Spend control in Debian's Chromium (Playwright), against the app on a real HTTP server: the
modal shows the estimate as it opens (from the page, before any request returns) and the 402 when
over budget; the Usage page draws the chart and its numbers are the API's."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from igny8.models import utcnow
from tests.support.browser import shot
from tests.support.writer import GENERATE, article, configure, finished

pytestmark = pytest.mark.browser
KEY = "sk-test-0123456789"


def _openai(client, acme, **settings) -> None:  # noqa: ANN001, ANN003
    client.put("/api/v1/system/integrations/openai/", json={"api_key": KEY}, headers=acme["headers"])
    configure(client, acme, provider="openai", model="gpt-image-2", quality="medium", partial_images=0,
              max_in_article_images=2, **settings)


def test_the_modal_shows_the_estimate_as_it_opens(page, client, acme):
    _openai(client, acme, monthly_budget=1)
    content = article(client, acme, in_article=2)
    dry = client.post(GENERATE, json={"content_id": content["id"], "dry_run": True}, headers=acme["headers"]).json
    page.reload()
    button = page.locator(f"[data-generate='{content['id']}']")
    assert float(button.get_attribute("data-estimate")) == pytest.approx(dry["estimated_cost"])
    # One synchronous script: the click opens the modal from the page; the request cannot have
    # returned before the script ends (fetch answers in a later task).
    at_open = page.evaluate("""(sel) => { document.querySelector(sel).click();
        const estimate = document.querySelector('[data-modal] [data-modal-estimate]');
        return {estimate: estimate && estimate.getAttribute('data-modal-estimate'),
                text: estimate && estimate.textContent,
                responded: performance.getEntriesByName('igny8-generate-response').length}; }""",
                            f"[data-generate='{content['id']}']")
    assert at_open["responded"] == 0 and float(at_open["estimate"]) == pytest.approx(dry["estimated_cost"])
    assert f"Estimated cost ${dry['estimated_cost']:.4f}" in " ".join(at_open["text"].split())
    assert "$1.00 of this month's $1.00 budget remains" in " ".join(at_open["text"].split())
    # The live view replaces the preview as soon as the request returns (the estimate served its moment).
    expect(page.locator("[role=dialog]")).to_be_visible()

def test_over_budget_the_modal_says_so_and_queues_nothing(page, client, acme):
    _openai(client, acme, monthly_budget=0.1)
    content = article(client, acme, in_article=2)
    page.reload()
    page.click(f"[data-generate='{content['id']}']")
    expect(page.locator("[data-modal-estimate]")).to_contain_text("over budget, nothing will be queued")
    expect(page.locator(".modal-footer .field-error")).to_contain_text("budget remains; nothing was queued")
    rows = client.get(f"/api/v1/writer/images/?content_id={content['id']}", headers=acme["headers"]).json["images"]
    assert {row["status"] for row in rows} == {"pending"}


def test_the_usage_page_draws_the_api_numbers(page, client, acme, fake_openai, start_worker, live_server):
    _openai(client, acme, monthly_budget=2)
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    for title in ("Rye", "Spelt"):
        content = article(client, acme, in_article=2, title=title)
        task = client.post(GENERATE, json={"content_id": content["id"]}, headers=acme["headers"]).json["task_id"]
        finished(client, acme, task)
    api = client.get("/api/v1/usage/?group=day", headers=acme["headers"]).json
    page.goto(f"{live_server.url}/writer/usage")
    chart = page.locator("svg#usage-chart")
    expect(chart).to_be_visible()
    expect(page.locator("rect.usage-bar")).to_have_count(utcnow().day)
    today = page.locator(f"rect.usage-bar[data-day='{utcnow().date().isoformat()}']")
    assert int(today.get_attribute("data-images")) == api["rows"][0]["images"] == 6
    assert float(today.get_attribute("data-cost")) == pytest.approx(api["rows"][0]["cost"])
    total = page.locator("[data-total-cost]")
    assert float(total.get_attribute("data-total-cost")) == pytest.approx(api["totals"]["cost"])
    expect(page.locator("[data-spent]")).to_have_text(f"${api['budget']['spent']:.4f}")
    expect(page.locator("polyline.usage-cost")).to_have_count(1)
    shot(page, "usage-page")
    page.select_option("select[name=group]", "content")
    page.click("form.filters button[type=submit]")
    expect(page.locator("#usage-table tbody tr")).to_have_count(2)
    expect(page.locator("#usage-table")).to_contain_text("Spelt")
