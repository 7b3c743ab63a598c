"""The Images page and the live modal in Debian's Chromium (Playwright), against the app on a
real HTTP server, a real worker and a local server speaking OpenAI's wire format."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.browser import open_page, shot
from tests.support.writer import GENERATE, article, configure

pytestmark = pytest.mark.browser


def test_modal_opens_at_once_and_bars_follow_the_batch(page, client, acme, fake_openai, start_worker, live_server):
    client.put("/api/v1/system/integrations/openai/", json={"api_key": "sk-test-0123456789"}, headers=acme["headers"])
    configure(client, acme, provider="openai", model="gpt-image-2", max_in_article_images=4)
    fake_openai.latency = 0.8
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    body = {"title": "Sourdough at home", "featured_prompt": "A loaf",
            "in_article_prompts": ["Starter", "Dough [provider-fail:content-policy]", "Banneton", "Oven"]}
    content = client.post("/api/v1/writer/content/", json=body, headers=acme["headers"]).json
    page.reload()
    # Notes every bar that is ever "processing" (an image's turn can be shorter than a poll's interval).
    page.evaluate("""() => { window.__processing = new Set();
        new MutationObserver(() => document.querySelectorAll('.queue-item.processing')
            .forEach(el => window.__processing.add(el.id || el.textContent)))
          .observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['class']}); }""")
    page.click(f"[data-generate='{content['id']}']")
    marks = page.evaluate("""() => Object.fromEntries(performance.getEntriesByType('mark')
        .filter(m => m.name.startsWith('igny8-')).map(m => [m.name, {t: m.startTime, d: m.detail}]))""")
    assert marks["igny8-modal-visible"]["d"]["bars"] == 5
    page.wait_for_function("() => performance.getEntriesByName('igny8-generate-response').length > 0")
    response_at = page.evaluate("() => performance.getEntriesByName('igny8-generate-response')[0].startTime")
    assert marks["igny8-modal-visible"]["t"] < response_at, "the modal is up before the request returns"
    dialog = page.locator("[role=dialog]")
    expect(dialog).to_be_visible()
    expect(page.locator("[role=progressbar]")).to_have_count(5)
    page.wait_for_function("() => window.__processing.size >= 1", timeout=15000)
    page.wait_for_function("() => [...document.querySelectorAll('[role=progressbar]')]"
                           ".some(b => Number(b.getAttribute('aria-valuenow')) > 10)")
    shot(page, "modal-running")
    expect(page.locator("[data-modal] img.thumb")).to_have_count(4, timeout=30000)
    expect(page.locator(".queue-item.failed .field-error")).to_contain_text("policy")
    expect(page.locator(".modal-footer[data-finished]")).to_contain_text("4 generated, 1 failed")
    expect(page.locator("[data-retry-ids]")).to_be_visible()
    shot(page, "modal-finished")
    page.click(".modal-footer [data-close-modal]")
    expect(page.locator("[data-modal]")).to_have_count(0)
    expect(page.locator(f"#article-{content['id']} img.thumb")).to_have_count(4)
    expect(page.locator("#costs")).to_contain_text("4 generated · 1 failed")  # the totals refresh too
    widths = page.locator(f"#article-{content['id']} img.thumb").evaluate_all(
        "imgs => imgs.map(i => i.getBoundingClientRect().width)")
    assert min(widths) >= 90, f"thumbnails squeezed in the list: {widths}"


def test_closing_mid_batch_and_reopening_shows_the_true_state(page, client, acme, start_worker):
    configure(client, acme, provider="local", model="placeholder", max_in_article_images=4)
    start_worker(LOCAL_PROVIDER_LATENCY="1.0")
    content = article(client, acme)
    page.reload()
    page.click(f"[data-generate='{content['id']}']")
    expect(page.locator(".queue-item.completed")).to_have_count(1, timeout=15000)
    page.keyboard.press("Escape")
    expect(page.locator("[data-modal]")).to_have_count(0)
    expect(page.locator(f"#generate-{content['id']}")).to_contain_text("generating…")
    page.reload()
    page.click(f"#generate-{content['id']} [data-view-task]")
    expect(page.locator("[data-modal] .queue-item")).to_have_count(5)
    done_now = page.locator("[data-modal] .queue-item.completed").count()
    assert done_now >= 1, "reopening shows the images already finished"
    expect(page.locator(".modal-footer[data-finished]")).to_contain_text("5 generated", timeout=30000)


# The drawn width of each bar; null for a bar swapped in a moment ago that app.js has not sized yet
# (it does in the next animation frame, before that bar is ever painted).
BAR_WIDTHS = """() => [...document.querySelectorAll('[data-modal] .progress-bar')].map(bar => bar.style.width
    ? 100 * bar.getBoundingClientRect().width / bar.parentElement.getBoundingClientRect().width : null)"""


def test_a_bar_never_moves_backwards_on_screen_while_events_swap_it(page, client, acme, start_worker):
    """Each event swaps a new bar into the slot; it must start where the old one was drawn (its
    width transition used to animate it up from 0 after every event)."""
    configure(client, acme, provider="local", model="placeholder", max_in_article_images=4)
    start_worker(LOCAL_PROVIDER_LATENCY="0.6")
    content = article(client, acme)
    page.reload()
    page.click(f"[data-generate='{content['id']}']")
    expect(page.locator(".queue-item.processing")).to_have_count(1, timeout=15000)
    samples = []
    while not page.locator(".modal-footer[data-finished]").count() and len(samples) < 400:
        samples.append(page.evaluate(BAR_WIDTHS))
        page.wait_for_timeout(25)
    assert len(samples) > 20, "sampled the bars while the batch ran"
    drawn: dict[int, float] = {}  # bar -> widest it has been drawn
    backwards = []
    for n, widths in enumerate(samples):
        for i, width in enumerate(widths):
            if width is None:
                continue
            if width < drawn.get(i, 0) - 1:
                backwards.append((n, i, drawn[i], width))
            drawn[i] = max(drawn.get(i, 0), width)
    assert backwards == [], f"bars drawn narrower than a moment before: {backwards[:5]}"


def test_modal_is_usable_on_a_phone_in_dark_mode(browser, live_server, client, acme, worker):
    configure(client, acme, provider="local", model="placeholder", max_in_article_images=2)
    content = article(client, acme, in_article=2)
    page = open_page(browser, live_server, acme, 390, height=800, color_scheme="dark")  # waits for app.js
    page.click(f"[data-generate='{content['id']}']")
    expect(page.locator(".modal-footer[data-finished]")).to_contain_text("3 generated", timeout=30000)
    box = page.locator("[role=dialog]").bounding_box()
    assert box["width"] <= 390
    shot(page, "modal-phone-dark")
    page.context.close()


def test_queue_dashboard_renders_the_batch_for_an_operator(page, client, acme, accounts, live_server):
    """rq-dashboard draws its tables with client-side templates: under our CSP they must render
    (not stay on "Loading..."), with the batch's readable description and its progress summary."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    accounts.make_operator(acme)
    configure(client, acme, provider="local", model="placeholder", max_in_article_images=2)
    content = article(client, acme, in_article=2, title="Dashboard loaf")
    task_id = client.post(GENERATE, json={"content_id": content["id"]}, headers=acme["headers"]).json["task_id"]
    page.goto(f"{live_server.url}/rq/")
    expect(page.locator("table tbody tr", has_text="images").first).to_be_visible()
    page.goto(f"{live_server.url}/rq/0/view/jobs/images/queued/100/asc/1")
    expect(page.locator("table tbody")).to_contain_text("Generate 3 images for “Dashboard loaf”")
    page.goto(f"{live_server.url}/rq/0/view/job/{task_id}")
    expect(page.locator("body")).to_contain_text('"total_images": 3')
    assert errors == [], f"the dashboard's scripts failed: {errors}"


def test_markup_a_writer_typed_never_runs_on_the_queue_dashboard(page, app, client, acme, accounts, live_server):
    """The attack review's stored XSS: an article title with an ``onerror`` handler, shown on the
    job pages of an operator. Our job description/meta carry no markup, and the job page escapes
    what a job holds anyway (checked with a job enqueued with raw markup); /rq's CSP has a nonce,
    never 'unsafe-inline', for scripts."""
    from rq import Queue

    from igny8.tasks.jobs import process_image_generation_queue

    accounts.make_operator(acme)
    hostile = "<img src=x onerror=\"document.title='XSSED'\">"
    configure(client, acme, provider="local", model="placeholder", max_in_article_images=1)
    content = article(client, acme, in_article=1, title=f"Dash {hostile}")
    task_id = client.post(GENERATE, json={"content_id": content["id"]}, headers=acme["headers"]).json["task_id"]
    raw = Queue("images", connection=app.extensions["rq_redis"]).enqueue(
        process_image_generation_queue, "raw-markup-job", job_id="raw-markup-job", description=f"Raw {hostile}",
        meta={"note": hostile})
    response = page.goto(f"{live_server.url}/rq/0/view/job/{task_id}")
    script_src = next(part for part in response.headers["content-security-policy"].split(";")
                      if part.strip().startswith("script-src"))
    assert "'nonce-" in script_src and "unsafe-inline" not in script_src
    expect(page.locator("#job-data")).to_contain_text("Dash ‹img src=x")
    page.goto(f"{live_server.url}/rq/0/view/job/{raw.id}")
    expect(page.locator("#job-data")).to_contain_text(f"Raw {hostile}")  # shown as text
    expect(page.locator("#job-data")).to_contain_text('"note":')
    page.goto(f"{live_server.url}/rq/0/view/jobs/images/queued/100/asc/1")
    expect(page.locator("table tbody")).to_contain_text(f"Raw {hostile}")
    page.goto(f"{live_server.url}/rq/0/view/workers")
    page.wait_for_timeout(500)
    assert page.title() != "XSSED" and page.locator("#job-data img, table img").count() == 0
    shot(page, "dashboard-escaped")


def test_cancel_asks_first_and_shows_cancelled_images(page, client, acme, start_worker):
    configure(client, acme, provider="local", model="placeholder", max_in_article_images=4)
    start_worker(LOCAL_PROVIDER_LATENCY="1.5")
    content = article(client, acme, in_article=4, title="Cancel me")
    page.reload()
    expect(page.locator(f"#generate-{content['id']} .cap-note")).to_have_count(0)
    page.click(f"[data-generate='{content['id']}']")
    cancel = page.locator("[data-modal] [data-cancel-task]")
    expect(cancel).to_be_visible(timeout=10000)
    page.once("dialog", lambda dialog: dialog.dismiss())  # "No": nothing happens
    cancel.click()
    expect(cancel).to_be_enabled()
    page.once("dialog", lambda dialog: dialog.accept())
    cancel.click()
    footer = page.locator(".modal-footer[data-finished]")
    expect(footer).to_contain_text("Cancelled.", timeout=30000)
    expect(footer.locator("[data-outcome]")).to_have_attribute("data-outcome", "cancelled")
    expect(page.locator("[data-modal] .queue-item.cancelled").first).to_be_visible()
    assert page.locator("[data-modal] .queue-item.pending").count() == 0, "cancelled, not pending"
    shot(page, "modal-cancelled")


def test_retry_on_the_list_card_of_a_failed_image(page, client, acme, fake_openai, start_worker):
    client.put("/api/v1/system/integrations/openai/", json={"api_key": "sk-test-0123456789"}, headers=acme["headers"])
    configure(client, acme, provider="openai", model="gpt-image-2", max_in_article_images=2)
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    content = article(client, acme, in_article=3, title="Retry me")
    fake_openai.queue_behaviours("ok", "content-policy", "ok")
    page.reload()
    expect(page.locator(f"#generate-{content['id']} .cap-note")).to_contain_text(
        "max 2 in-article images per article — change it in Settings")
    page.click(f"[data-generate='{content['id']}']")
    expect(page.locator("[data-modal] [data-cap-note]")).to_contain_text("1 in-article image is left out")
    footer = page.locator(".modal-footer[data-finished]")
    expect(footer).to_contain_text("Partly generated.", timeout=30000)
    page.keyboard.press("Escape")
    retry = page.locator(f"#article-{content['id']} [data-retry-ids]")
    expect(retry).to_have_count(1)
    retry.click()
    expect(page.locator(".modal-footer[data-finished]")).to_contain_text("All images generated.", timeout=30000)
    page.keyboard.press("Escape")
    expect(page.locator(f"#article-{content['id']} .badge.failed")).to_have_count(0)
