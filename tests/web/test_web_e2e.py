"""The web page in a real headless chromium (Playwright), served by uvicorn on the tiny
real assistant: upload, compare, chart, marked moments, chat, ranking, errors."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from stepdiff.web import create_app
from stepdiff.web.server import serve_in_thread

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MAX_UPLOAD_BYTES = 2 * 2**20

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no chromium binary on PATH (`make install` adds Debian's chromium as root)",
    ),
]


@pytest.fixture(scope="module")
def base_url(tiny_assistant, synthetic_clip_path: Path, candidate_clip_path: Path) -> Iterator[str]:
    app = create_app(
        tiny_assistant,
        max_upload_bytes=MAX_UPLOAD_BYTES,
        examples=[synthetic_clip_path, candidate_clip_path],
    )
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # The system's chromium: Playwright's own browser downloads are never used.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(base_url)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    yield page
    context.close()


def slot(page: Page, index: int):
    return page.locator("#slots .slot").nth(index)


def test_upload_compare_see_chart_and_moments_then_chat(
    page: Page, synthetic_clip_path: Path, candidate_clip_path: Path
) -> None:
    slot(page, 0).locator(".file").set_input_files(synthetic_clip_path)
    slot(page, 1).locator(".file").set_input_files(candidate_clip_path)
    expect(slot(page, 0).locator(".clip-name")).to_have_text("synthetic.mp4: 4 s, 128x128")
    expect(slot(page, 1).locator(".clip-name")).to_contain_text("web_candidate.mp4: 3 s")
    page.click("#compare")
    expect(page.locator("#results")).to_be_visible()
    expect(page.locator("#error")).to_be_hidden()

    # The severity chart: one bar per category, each 1..5 units of the 360 px scale.
    expect(page.locator("#chart .row")).to_have_count(6)
    widths = [
        float(w)
        for w in page.locator("#chart rect.bar").evaluate_all(
            "bars => bars.map(b => b.getAttribute('width'))"
        )
    ]
    assert all(72 <= w <= 360 for w in widths), widths
    expect(page.locator("#captions dt")).to_have_count(6)

    # Both frame strips, thumbnails really loaded, and the differing moments marked.
    for role in ("reference", "candidate"):
        images = page.locator(f"#strip-{role} img")
        expect(images).to_have_count(4)
        loaded = images.evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
        assert loaded == [True] * 4
        expect(page.locator(f"#strip-{role} .frame.marked .badge").first).to_be_visible()
    expect(page.locator("#moments li")).not_to_have_count(0)

    # Clicking another category marks its moments (and selects its row).
    page.locator("#chart .row").nth(2).click()
    expect(page.locator("#chart .row.selected")).to_have_attribute("data-category", "Technique")
    expect(page.locator("#moments li").first).to_contain_text("reference at")

    page.fill("#question", "What did I do wrong compared to the reference?")
    page.press("#question", "Enter")
    expect(page.locator(".msg.user")).to_have_text("What did I do wrong compared to the reference?")
    expect(page.locator(".msg.bot.pending")).to_have_count(0)
    expect(page.locator(".msg.bot.failed")).to_have_count(0)
    expect(page.locator(".msg.bot")).not_to_have_text("...")

    page.locator(".chip", has_text="Am I done yet?").click()
    expect(page.locator(".msg.bot")).to_have_count(2)
    expect(page.locator(".msg.bot.pending")).to_have_count(0)


def test_rank_several_candidates_picked_from_the_examples(page: Page) -> None:
    page.click("#add-candidate")
    expect(page.locator("#slots .slot")).to_have_count(3)
    slot(page, 0).locator(".example").select_option(label="synthetic.mp4 (4 s)")
    slot(page, 1).locator(".example").select_option(label="web_candidate.mp4 (3 s)")
    slot(page, 2).locator(".example").select_option(label="synthetic.mp4 (4 s)")
    slot(page, 2).locator(".end").fill("2")
    page.click("#compare")
    rows = page.locator("#rank-table tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#rank-table thead th")).to_have_count(3 + 6)
    expect(rows.first).to_have_class("selected")
    expect(page.locator("#results")).to_be_visible()
    first_title = page.locator("#pair-title").text_content()
    rows.nth(1).click()
    expect(rows.nth(1)).to_have_class("selected")
    expect(page.locator("#pair-title")).not_to_have_text(first_title or "")


def test_errors_are_shown_in_the_page(page: Page, not_a_video: Path, tmp_path: Path) -> None:
    error = page.locator("#error")
    slot(page, 0).locator(".file").set_input_files(not_a_video)
    expect(error).to_contain_text("notes.mp4 is not a video this server can read")
    expect(slot(page, 0).locator(".clip-name")).to_have_text("no clip yet")

    big = tmp_path / "long take.mp4"
    big.write_bytes(b"\0" * (MAX_UPLOAD_BYTES + 1))
    slot(page, 1).locator(".file").set_input_files(big)
    expect(error).to_have_text("long take.mp4 is larger than the upload limit of 2 MB")

    slot(page, 0).locator(".example").select_option(label="synthetic.mp4 (4 s)")
    slot(page, 1).locator(".example").select_option(label="web_candidate.mp4 (3 s)")
    slot(page, 1).locator(".start").fill("10")
    slot(page, 1).locator(".end").fill("12")
    page.click("#compare")
    expect(error).to_have_text(
        "candidate (web_candidate.mp4): segment 10-12 s lies outside the 3.00 s clip"
    )
    expect(page.locator("#results")).to_be_hidden()
