"""Headless Chromium for the web-page tests: skip the module when Playwright or Debian's chromium is missing,
launch the browser with the flags a container needs, and open the served page once the given panel is ready."""
from __future__ import annotations

import contextlib
import os
import shutil

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def require_browser():
    """The `playwright.sync_api` module, or a module-level skip naming what to install."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the Python package)")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
    return sync_api


@contextlib.contextmanager
def launched():
    """A headless Chromium browser, closed on exit."""
    with require_browser().sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str, ready: str, height: int = 1000):
    """A new 1280 x `height` page at `url`, returned once the JavaScript condition `ready` holds."""
    page = browser.new_page(viewport={"width": 1280, "height": height})
    page.goto(url)
    page.wait_for_function(ready)
    return page


@contextlib.contextmanager
def served_page(url: str, ready: str, height: int = 1000):
    """`open_page` in a browser of its own, closed on exit."""
    with launched() as browser:
        yield open_page(browser, url, ready, height)
