"""Usage (issue 17): ``GET /api/v1/usage/`` sums what the images really cost, by day, provider,
model and article, account-scoped; bad input is a 400 that says why; the CSV is safe to open in a
spreadsheet; the Usage page shows the month, the chart and the rows; the budget banner at 80 %."""

from __future__ import annotations

import csv
import io

import pytest

from igny8.models import utcnow
from tests.support.writer import Writer

KEY = "sk-usage-test-0123456789"
USAGE = "/api/v1/usage/"


def _generate(writer: Writer, fake_openai, start_worker, titles: tuple[str, ...], **settings) -> list[dict]:  # noqa: ANN001, ANN003
    writer.save_api_key("openai", KEY)
    writer.configure(provider="openai", model="gpt-image-2", quality="medium", partial_images=0,
                     max_in_article_images=1, **settings)
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    contents = [writer.write(title, "A loaf", ["Crumb [provider-fail:content-policy]" if i else "Crumb"])
                for i, title in enumerate(titles)]
    for content in contents:
        writer.finished(writer.generate(content))
    return contents


def _usage(writer: Writer, **params) -> dict:  # noqa: ANN003
    response = writer.client.get(USAGE, query_string=params, headers=writer.headers)
    assert response.status_code == 200, response.json
    return response.json


def test_usage_sums_equal_the_images_recorded_costs(writer, fake_openai, start_worker):
    contents = _generate(writer, fake_openai, start_worker, ("Bread", "=HYPERLINK(\"http://x\")"))
    images = [row for content in contents for row in writer.images(content)]
    paid = sum(row["cost"] for row in images)
    assert paid == pytest.approx(0.063 * 2 + 0.042)
    today = utcnow().date().isoformat()
    for group in ("day", "provider", "model", "content"):
        body = _usage(writer, group=group)
        assert sum(row["cost"] for row in body["rows"]) == pytest.approx(paid), group
        assert sum(row["images"] for row in body["rows"]) == 3 and sum(row["failed"] for row in body["rows"]) == 1
        assert body["totals"] == {"images": 3, "failed": 1, "cost": pytest.approx(paid)}
    assert _usage(writer, group="day")["rows"][0]["key"] == today
    assert [row["key"] for row in _usage(writer, group="provider")["rows"]] == ["openai"]
    assert [row["key"] for row in _usage(writer, group="model")["rows"]] == ["gpt-image-2"]
    by_content = {row["key"]: row for row in _usage(writer, group="content")["rows"]}
    assert by_content[str(contents[0]["id"])] == {"key": str(contents[0]["id"]), "label": "Bread", "images": 2,
                                                  "failed": 0, "cost": pytest.approx(0.063 + 0.042)}
    assert by_content[str(contents[1]["id"])]["failed"] == 1
    assert _usage(writer, **{"from": "2020-01-01", "to": "2020-01-31"})["rows"] == []

    response = writer.client.get(USAGE, query_string={"group": "content", "format": "csv"}, headers=writer.headers)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["content", "label", "images", "failed", "cost_usd"]
    labels = [row[1] for row in rows[1:]]
    assert "'=HYPERLINK(\"http://x\")" in labels, "a formula is shown as text, never run"
    assert sum(float(row[4]) for row in rows[1:]) == pytest.approx(paid)


@pytest.mark.parametrize(("params", "message"), [
    ({"from": "2026-13-01"}, "from is not a calendar date"),
    ({"from": "06/12/2026"}, "from must be a date as YYYY-MM-DD."),
    ({"to": "yesterday"}, "to must be a date as YYYY-MM-DD."),
    ({"from": "2026-02-01", "to": "2026-01-01"}, "from must not be after to."),
    ({"from": "2020-01-01", "to": "2026-01-01"}, "at most 366 days"),
    ({"group": "week"}, "group must be one of: day, provider, model, content."),
    ({"format": "xml"}, "format must be json or csv."),
])
def test_bad_usage_queries_answer_400_saying_why(writer, params, message):
    response = writer.client.get(USAGE, query_string=params, headers=writer.headers)
    assert response.status_code == 400 and response.json["success"] is False
    assert message in response.json["error"]


def test_usage_is_account_scoped(writer, writer_for, globex, fake_openai, start_worker):
    _generate(writer, fake_openai, start_worker, ("Acme bread",))
    other = writer_for(globex)
    body = other.client.get(USAGE, query_string={"group": "content"}, headers=other.headers).json
    assert body["rows"] == [] and body["totals"]["cost"] == 0
    page = other.client.get(USAGE, query_string={"format": "csv"}, headers=other.headers).get_data(as_text=True)
    assert page.strip() == "day,label,images,failed,cost_usd"


def test_the_usage_page_shows_the_month_the_chart_and_the_banner_at_80_percent(writer, fake_openai, start_worker):
    contents = _generate(writer, fake_openai, start_worker, ("<b>Bold</b> bread",), monthly_budget=0.12)
    writer.login()
    page = writer.client.get("/writer/usage?group=content")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and '<svg id="usage-chart"' in html and 'class="usage-bar"' in html
    assert "&lt;b&gt;Bold&lt;/b&gt; bread" in html and "<b>Bold</b>" not in html
    assert 'data-monthly>$0.12<' in html and 'data-total-cost="0.105"' in html
    assert 'id="budget-banner"' in html and "88 % of this month" in html
    images_page = writer.client.get("/writer/images").get_data(as_text=True)
    assert 'id="budget-banner"' in images_page, "the banner is on every page"
    bad = writer.client.get("/writer/usage?from=nope")
    assert bad.status_code == 400 and "from must be a date as YYYY-MM-DD." in bad.get_data(as_text=True)
    writer.configure(monthly_budget=None)
    assert 'id="budget-banner"' not in writer.client.get("/writer/images").get_data(as_text=True)
    month = " ".join(writer.client.get("/writer/usage").get_data(as_text=True).split())
    assert "$0.1050</strong> spent. No monthly budget: set one in" in month
    assert contents


def test_the_images_page_carries_each_articles_estimate_for_the_modal(writer):
    writer.configure(provider="openai", model="gpt-image-2", quality="medium", partial_images=0,
                     max_in_article_images=2, monthly_budget=0.1)
    writer.article(in_article=2)
    writer.login()
    html = writer.client.get("/writer/images").get_data(as_text=True)
    assert 'data-estimate="0.1470"' in html and 'data-remaining="0.1000"' in html
    assert 'data-modal-estimate="0.1470"' in html and "over budget, nothing will be queued" in html


@pytest.mark.parametrize(("answered", "recorded"), [(0.0013, 0.0013), (None, 0.01)])
def test_runwares_own_cost_is_recorded_else_the_tables(writer, fake_runware, start_worker, answered, recorded):
    """Runware answers what it charged (includeCost): that is spent, not the $0.01 estimate held;
    an answer without a cost records the price table's figure."""
    fake_runware.cost = answered
    writer.save_api_key("runware", "rw-test-0123456789")
    writer.configure(provider="runware", max_in_article_images=1, monthly_budget=1)
    start_worker(RUNWARE_BASE_URL=fake_runware.base_url)
    content = writer.article(in_article=1)
    dry = writer.click_generate(body={"content_id": content["id"], "dry_run": True}).json
    assert dry["estimated_cost"] == pytest.approx(0.02)
    writer.finished(writer.generate(content))
    assert [row["cost"] for row in writer.images(content)] == pytest.approx([recorded, recorded])
    body = _usage(writer, group="provider")
    assert body["rows"] == [{"key": "runware", "label": "runware", "images": 2, "failed": 0,
                             "cost": pytest.approx(2 * recorded)}]
    assert body["budget"]["spent"] == pytest.approx(2 * recorded) and body["budget"]["reserved"] == 0
