"""A screenshot of the chat page of a running ``ccrs serve``: one conversation typed in, as a user would.

    make serve &                                 # the demo's checkpoints (make demo first)
    python -m serve.screenshot --url http://127.0.0.1:8000/ --out results/chat_page_real.png \\
        --message "I loved Alien and The Thing, any other scary sci-fi?" \\
        --message "Seen it. Something newer?"

Drives Debian's ``chromium`` with Playwright (no browser download; ``CCRS_CHROMIUM`` to override).
"""

from __future__ import annotations

import argparse
import os
import shutil

# Without these, Chromium's background connections are refused by a closed network, many at a time.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000/")
    p.add_argument("--out", required=True)
    p.add_argument("--user", default="7")
    p.add_argument("--message", action="append", required=True, help="a seeker turn (repeatable, in order)")
    args = p.parse_args(argv)
    chromium = os.environ.get("CCRS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no Chromium found (apt-get install chromium, or set CCRS_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(args.url)
            page.fill("#user", args.user)
            for i, message in enumerate(args.message, 1):
                page.fill("#message", message)
                page.click("#send")
                page.wait_for_function(f"document.querySelectorAll('.turn.recommender').length >= {i}",
                                       timeout=60_000)
            page.wait_for_selector("#items li.item", timeout=10_000)
            page.screenshot(path=args.out, full_page=True)
        finally:
            browser.close()
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
