"""The chat page in headless Chromium: type a message, see a response and a recommended movie appear.

Uses Debian's ``chromium`` (``.ci/run`` installs it) driven by Playwright with that executable: no
browser download. Skips, saying why, where no Chromium is found.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from serve.screenshot import FLAGS  # Chromium without its background connections (closed network)

CHROMIUM = os.environ.get("CCRS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (apt-get install chromium, or set CCRS_CHROMIUM)")
def test_chat_page_shows_a_response_a_movie_and_the_style_mixture(serve_app, synth_prepared, tmp_path):
    from playwright.sync_api import sync_playwright

    from ccrs.data.dataset import PreparedDataset

    movie = next(e["name"] for e in PreparedDataset.open(synth_prepared).table("entities").to_pylist() if e["is_item"])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            page.goto(serve_app.base + "/")
            page.fill("#user", "3")
            page.fill("#message", f"I loved {movie}, what else should I watch?")
            page.click("#send")
            page.wait_for_selector(".turn.recommender", timeout=60_000)
            page.wait_for_selector("#items li.item", timeout=10_000)
            response = page.inner_text(".turn.recommender")
            items = page.locator("#items li.item").all_inner_texts()
            bars = page.locator("#styles .bar").count()
            understood = page.inner_text("#understood")
            page.click("#adapt")
            page.wait_for_function("document.getElementById('adapt-status').textContent.length > 0", timeout=30_000)
            adapt_status = page.inner_text("#adapt-status")
            shot = Path(os.environ.get("CCRS_SCREENSHOT_DIR", tmp_path)) / "chat_page.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
        finally:
            browser.close()
    assert response.startswith("Try ") and len(response) > len("Try ")  # detokenized, capitalised
    assert items and all("(" in it for it in items)  # "name (score)"
    assert bars == 4  # n_styles of the tiny generator
    assert movie.split(" (")[0] in understood  # what the recommender linked is shown
    assert adapt_status.startswith("adapted on") or "conversations" in adapt_status  # a clean answer either way
