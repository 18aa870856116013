"""Screenshot of the web app comparing the demo clips: docs/web-demo.png for the README.

Starts the app with the shipped default model (or --config/--model), picks the two demo
clips, runs the comparison, asks one question in a headless chromium and saves the page.

    python scripts/screenshot_web.py [--out docs/web-demo.png] [--config tiny]
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import time
from pathlib import Path

from PIL import Image
from playwright.sync_api import expect, sync_playwright

from stepdiff.assistant import Assistant
from stepdiff.demo import make_demo_clips
from stepdiff.web import create_app
from stepdiff.web.server import serve_in_thread

QUESTION = "What did I do wrong in the second video compared to the first?"
MODEL_TIMEOUT_MS = 300_000  # the default model on 2 CPU cores: captions take a while


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/web-demo.png"))
    parser.add_argument("--config", help="config file or preset (default: the shipped model)")
    parser.add_argument("--model", type=Path, help="folder of a saved StepDiff model")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("error: no chromium on PATH (Debian: apt-get install chromium)")

    started = time.perf_counter()
    assistant = Assistant.from_options(config=args.config, checkpoint=args.model)
    reference, candidate = make_demo_clips()
    app = create_app(assistant, examples=[reference.path, candidate.path])
    with serve_in_thread(app) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.set_default_timeout(MODEL_TIMEOUT_MS)
        page.goto(url)
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        slots = page.locator("#slots .slot")
        slots.nth(0).locator(".example").select_option(label="reference.mp4 (4 s)")
        slots.nth(1).locator(".example").select_option(label="candidate.mp4 (4 s)")
        page.click("#compare")
        expect(page.locator("#results")).to_be_visible(timeout=MODEL_TIMEOUT_MS)
        page.fill("#question", QUESTION)
        page.press("#question", "Enter")
        expect(page.locator(".msg.bot.pending")).to_have_count(0, timeout=MODEL_TIMEOUT_MS)
        expect(page.locator("#error")).to_be_hidden()
        png = page.screenshot(full_page=True)
        browser.close()
    # A 256-colour palette keeps the README image small; the page has few colours anyway.
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, optimize=True)
    size_kb = args.out.stat().st_size / 1024
    print(f"wrote {args.out} ({size_kb:.0f} KB) in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
