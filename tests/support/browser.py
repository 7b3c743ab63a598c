"""Debian's Chromium for the browser tests (Playwright): the ``browser`` (one per test module) and
a logged-in ``page`` watched for Content-Security-Policy violations (fixtures, registered in
conftest.py), and the helpers to open more pages and keep screenshots."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.accounts import PASSWORD
from tests.support.processes import LiveServer

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"  # screenshots, kept after the run


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless (never a downloaded one), one per test module."""
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), "make test installs Debian's chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-component-update", "--no-first-run"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, live_server: LiveServer, acme: dict) -> Iterator[Page]:
    """A page logged in as ``acme``, on the Images page, at 1200×900."""
    with watched_page(browser, live_server, acme) as page:
        yield page


@contextmanager
def watched_page(browser: Browser, live_server: LiveServer, acme: dict, **options: Any) -> Iterator[Page]:
    """A page of a new context (``options`` for ``new_context``), logged in as ``acme``. The strict
    Content-Security-Policy must never have to block anything of ours: on the way out the context
    is closed and any violation it logged fails the test."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, **options)
    page = context.new_page()
    blocked = []
    page.on("console", lambda msg: blocked.append(msg.text) if "Content Security Policy" in msg.text else None)
    log_in(page, live_server, acme)
    yield page
    context.close()
    assert blocked == [], f"CSP violations: {blocked}"


def open_page(browser: Browser, live_server: LiveServer, acme: dict, width: int, height: int = 900,
              **options: Any) -> Page:
    """A page of a new context ``width`` × ``height`` (``options`` for ``new_context``), logged in
    as ``acme``; the caller closes its context when it needs to."""
    context = browser.new_context(viewport={"width": width, "height": height}, **options)
    page = context.new_page()
    log_in(page, live_server, acme)
    return page


def log_in(page: Page, live_server: LiveServer, acme: dict) -> None:
    """Log in as ``acme`` and wait for the Images page: loaded, app.js included (a click before it
    would do nothing)."""
    page.goto(f"{live_server.url}/login")
    page.fill("#email", acme["email"])
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/writer/images")


def shot(page: Page, name: str) -> None:
    """Keep a screenshot of the viewport in ARTIFACTS."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)
