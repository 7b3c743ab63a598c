"""The article page in Debian's Chromium (Playwright), against the app on a real HTTP server and
a real worker with the local provider: the finished article at desktop and phone widths, inline
alt text, Regenerate live with its versions, Copy HTML, and the exported ZIP opened from disk."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from tests.support.browser import ARTIFACTS, open_page
from tests.support.writer import Writer

pytestmark = pytest.mark.browser
BODY = ("<p>Good bread needs time, flour, water and salt. This guide walks through the whole bake.</p>"
        "<h2>Feed the starter</h2><p>Feed it twice a day for a week until it doubles within six hours.</p>"
        "<h2>Mix and knead</h2><p>Mix, rest for an hour, then stretch and fold four times.</p>"
        "<p>Bake at 250 °C in a covered pot for 20 minutes, then 25 uncovered.</p>")
CURRENT_SRCS = "() => [...document.querySelectorAll('[data-article-html] img')].map(i => i.currentSrc)"
LOADED = "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"


@pytest.fixture
def generated(writer: Writer, worker) -> dict:  # noqa: ANN001
    writer.configure(provider="local", model="placeholder", max_in_article_images=2)
    content = writer.write("Sourdough at home", featured_prompt="A crusty loaf on a board",
                           in_article_prompts=["A jar of bubbly starter", "Hands folding dough"], html=BODY)
    assert writer.finished(writer.generate(content))["meta"]["completed"] == 3
    return content


def goto_article(page: Page, live_server, content: dict) -> None:  # noqa: ANN001
    """Open the article page and wait until its images have loaded (a request cut short by the
    next navigation would leave the server's file open)."""
    page.goto(f"{live_server.url}/writer/content/{content['id']}")
    page.wait_for_function(LOADED)


def test_the_article_shows_its_images_in_place_at_desktop_and_phone_widths(browser, live_server, acme, writer,
                                                                           generated):
    rows = writer.images(generated)
    for width, variant, shot in ((1280, "image_url", "article-desktop"), (390, "mobile_url", "article-phone")):
        page = open_page(browser, live_server, acme, width)
        goto_article(page, live_server, generated)
        expect(page.locator("[data-article-html] figure")).to_have_count(3)
        page.wait_for_function(LOADED)
        assert page.evaluate(CURRENT_SRCS) == [live_server.url + row[variant] for row in rows]
        tags = page.locator("[data-article-html] > *").evaluate_all("nodes => nodes.map(n => n.tagName)")
        assert tags == ["FIGURE", "P", "H2", "P", "FIGURE", "H2", "P", "P", "FIGURE"]
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width, "nothing overflows"
        page.evaluate("() => Promise.all([...document.images].map(i => i.decode()))")  # painted, not only loaded
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
        page.context.close()


def test_alt_text_edited_inline_is_saved_and_shown_in_the_article(browser, live_server, acme, writer,
                                                                   generated):
    page = open_page(browser, live_server, acme, 1280)
    goto_article(page, live_server, generated)
    image = writer.images(generated)[1]
    card = page.locator(f"#image-card-{image['id']}")
    card.locator("input[name=alt_text]").fill("A glass jar of <b>bubbly</b> starter")
    card.locator("input[name=caption]").fill("Day 5: ready to bake")
    card.locator("button[type=submit]").click()
    expect(page.locator(f"#image-card-{image['id']} [data-saved]")).to_have_text("Saved.")
    figure = page.locator("[data-article-html] figure").nth(1)
    expect(figure.locator("img")).to_have_attribute("alt", "A glass jar of <b>bubbly</b> starter")
    expect(figure.locator("figcaption")).to_have_text("Day 5: ready to bake")
    page.wait_for_function(LOADED)
    goto_article(page, live_server, generated)
    expect(page.locator(f"#image-card-{image['id']} input[name=alt_text]")).to_have_value(
        "A glass jar of <b>bubbly</b> starter")
    page.context.close()


def test_copy_html_puts_the_article_html_on_the_clipboard(browser, live_server, acme, writer, generated):
    page = open_page(browser, live_server, acme, 1280)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    goto_article(page, live_server, generated)
    button = page.locator("[data-copy-html]")
    button.click()
    expect(button).to_have_text("Copied")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    expected = writer.client.get(f"/api/v1/writer/content/{generated['id']}/html", headers=writer.headers).json
    assert copied == expected["html"] and copied.startswith("<figure><picture>")
    page.context.close()


def test_the_exported_zip_opens_from_disk_with_every_image(browser, live_server, acme, writer, generated,
                                                           tmp_path):
    page = open_page(browser, live_server, acme, 1280)
    goto_article(page, live_server, generated)
    with page.expect_download() as download:
        page.click("text=Download ZIP")
    data = Path(download.value.path()).read_bytes()
    folder = tmp_path / "export"
    zipfile.ZipFile(io.BytesIO(data)).extractall(folder)
    page.goto((folder / "article.html").as_uri())
    expect(page.locator("figure img")).to_have_count(3)
    page.wait_for_function(LOADED)
    assert page.title() == "Sourdough at home"
    assert all(src.startswith((folder / "images").as_uri()) for src in page.evaluate(
        "() => [...document.images].map(i => i.currentSrc)"))
    page.context.close()


def test_regenerate_is_live_and_keeps_the_old_version(browser, live_server, acme, writer, generated,
                                                      start_worker):
    start_worker(LOCAL_PROVIDER_LATENCY="1.0")  # a second, slower worker: the bar is seen moving
    page = open_page(browser, live_server, acme, 1280)
    goto_article(page, live_server, generated)
    image = writer.images(generated)[1]
    card = page.locator(f"#image-card-{image['id']}")
    card.locator("summary").click()
    card.locator("textarea[data-regenerate-prompt]").fill("A jar of starter on a sunny windowsill")
    card.locator("[data-regenerate]").click()
    expect(page.locator("[data-modal] [role=progressbar]")).to_have_count(1)  # at once, before the answer
    expect(page.locator(".modal-footer[data-finished]")).to_contain_text("1 generated", timeout=30000)
    page.keyboard.press("Escape")
    versions = page.locator(f"#image-card-{image['id']} .version")
    expect(versions).to_have_count(2)
    page.wait_for_function(LOADED)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):  # the batch's end and the modal's close each swap the image area in anew
        try:
            page.locator(f"#image-card-{image['id']}").screenshot(path=str(ARTIFACTS / "article-versions.png"))
            break
        except PlaywrightError:
            if attempt == 2:
                raise
            page.wait_for_timeout(300)
    new_src = writer.images(generated)[1]["image_url"]
    assert new_src != image["image_url"]
    expect(page.locator("[data-article-html] figure").nth(1).locator("img")).to_have_attribute("src", new_src)
    old = page.locator(f"#image-card-{image['id']} .version:not(.active)")
    old.get_by_role("button", name="Activate").click()
    expect(page.locator("[data-article-html] figure").nth(1).locator("img")).to_have_attribute(
        "src", image["image_url"])
    page.once("dialog", lambda dialog: dialog.dismiss())  # "No": the version stays
    page.locator(f"#image-card-{image['id']} .version:not(.active)").get_by_role("button", name="Delete").click()
    expect(page.locator(f"#image-card-{image['id']} .version")).to_have_count(2)
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f"#image-card-{image['id']} .version:not(.active)").get_by_role("button", name="Delete").click()
    expect(page.locator(f"#image-card-{image['id']} .version")).to_have_count(1)
    expect(page.locator(f"#image-card-{image['id']} .version.active")).to_have_count(1)
    page.context.close()


def test_prompt_rows_move_and_add_images_in_the_form(browser, live_server, acme, writer, generated):
    """prompt_rows.js: Up moves a row (its image goes with it), Add appends a new one; saved 1..N."""
    before = [row for row in writer.images(generated) if row["type"] == "in_article"]
    page = open_page(browser, live_server, acme, 1280)
    page.goto(f"{live_server.url}/writer/content/{generated['id']}/edit")
    page.wait_for_function(LOADED)
    rows = page.locator("[data-prompt-row]")
    expect(rows).to_have_count(2)
    rows.nth(1).locator("[data-row-move='-1']").click()
    expect(rows.nth(0).locator("textarea")).to_have_value(before[1]["prompt"])
    page.click("[data-row-add]")
    expect(rows).to_have_count(3)
    expect(rows.nth(2).locator("[data-row-number]")).to_have_text("3")
    rows.nth(2).locator("textarea").fill("A sliced loaf on a rack")
    page.get_by_role("button", name="Save article").click()
    page.wait_for_url(f"**/writer/content/{generated['id']}")
    page.wait_for_function(LOADED)
    after = [(row["position"], row["id"], row["prompt"]) for row in writer.images(generated)
             if row["type"] == "in_article"]
    assert after[:2] == [(1, before[1]["id"], before[1]["prompt"]), (2, before[0]["id"], before[0]["prompt"])]
    assert (after[2][0], after[2][2]) == (3, "A sliced loaf on a rack")
    page.context.close()
