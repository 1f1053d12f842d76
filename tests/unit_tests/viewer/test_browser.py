"""The viewer in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

Each log shape is opened from a file:// URL with the network unused; the test asserts the key elements and text,
clicks through the lazy parts, checks that the page logged no console error, and keeps a screenshot (its path is
printed: run with `-s` to see it).
"""

from __future__ import annotations

import json
import os
import shutil
import threading

import pytest

from rlm_plugins.viewer import write_html
from rlm_plugins.viewer.serve import make_server

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(executable):
        pytest.skip("chromium is not installed: apt-get install -y chromium (.ci/run does it)")
    manager = sync_api.sync_playwright().start()
    try:
        chromium = manager.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    except Exception as exc:
        manager.stop()
        pytest.skip(f"chromium cannot start here: {str(exc).splitlines()[0]}")
    yield chromium
    chromium.close()
    manager.stop()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    return tmp_path_factory.mktemp("viewer-screenshots")


@pytest.fixture
def open_page(browser, screenshots):
    """open_page(url) -> (page, errors); every page is screenshotted at teardown."""
    opened = []

    def open_url(url, name):
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url)
        opened.append((page, name))
        return page, errors

    yield open_url
    for page, name in opened:
        path = screenshots / f"{name}.png"
        page.screenshot(path=str(path), full_page=name != "big")
        print(f"viewer screenshot: {path}")
        page.close()


def expand(details):
    """Open a <details> and wait until its lazily built body is there (the toggle event arrives as a task)."""
    details.locator("summary").first.click()
    details.locator(":scope > .body").wait_for()
    return details


def page_for(shape_logs, shape, tmp_path):
    return write_html(shape_logs[shape], tmp_path / f"{shape}.html").resolve().as_uri()


EXPECTED = {
    "final": ("final", "#final-answer", "apple"),
    "max_iterations": ("max_iterations", "#extracted", "probably apple"),
    "sandbox_error": ("sandbox_error", ".notes", "REPL state is lost"),
    "depth2": ("final", "#final-answer", "apple"),
    "official": ("final", "#final-answer", "forty-two"),
}


@pytest.mark.parametrize("shape", list(EXPECTED))
def test_each_shape_shows_how_the_run_ended(shape_logs, shape, tmp_path, open_page):
    reason, selector, text = EXPECTED[shape]
    page, errors = open_page(page_for(shape_logs, shape, tmp_path), shape)
    assert page.inner_text("#finish-reason") == reason
    assert text in page.inner_text(selector)
    first = expand(page.locator("details.iter").first)
    assert "model response" in first.inner_text().lower()
    assert first.locator("pre.code").count() >= 1
    assert errors == []


def test_sub_calls_and_child_runs_open_lazily(shape_logs, tmp_path, open_page):
    page, errors = open_page(page_for(shape_logs, "depth2", tmp_path), "depth2-child")
    assert page.locator("details.child").count() == 0
    expand(page.locator("details.iter").first)
    expand(page.locator("details.sub").first)
    child = expand(page.locator("details.child").first)
    assert "Most common fruit here?" in child.inner_text()
    expand(child.locator("details.iter").first)
    assert "context.count('apple')" in child.inner_text()
    assert errors == []


def test_code_is_highlighted_and_long_text_expands(shape_logs, tmp_path, open_page):
    page, errors = open_page(page_for(shape_logs, "big", tmp_path), "big")
    assert page.locator("details.iter").count() == 200
    assert page.locator("details.iter[open]").count() == 0
    expand(page.locator("details.iter").first)
    assert page.locator("details.iter").first.locator(".tok-fn").count() >= 1
    response = page.locator("details.iter").first.locator("pre.response")
    before = len(response.inner_text())
    page.locator("details.iter").first.locator("button.more").first.click()
    assert len(response.inner_text()) > before
    assert "only in the log file" in page.locator("details.iter").first.inner_text()
    page.click("#expand-all")
    assert page.locator("details.iter[open]").count() == 200
    assert page.inner_text("#summary").count("10,000") == 1
    assert errors == []


def test_served_page_refreshes_while_the_log_grows(shape_logs, tmp_path, open_page):
    log = shutil.copy(shape_logs["max_iterations"], tmp_path / "live.jsonl")
    server = make_server(tmp_path, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page, errors = open_page(f"http://127.0.0.1:{server.server_address[1]}/latest", "live")
        assert page.locator("details.iter").count() == 3
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"type": "iteration", "iteration": 4, "response": "a fourth step", "code_blocks": []}))
            fh.write("\n")
        page.wait_for_selector("#r0-it-4", timeout=30_000)
        assert "live" in page.inner_text("#live")
        assert errors == []
    finally:
        server.shutdown()
        server.server_close()
